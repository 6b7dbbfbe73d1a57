// Start-up: --help of each bundle in dist/ and of the same script through npm, against the floor
// (`node -e 0`). Goal (issue 14): every bundle ≤ 1.5× that floor, measured in the same run.
import { execFileSync } from 'node:child_process'
import tasks from '../tasks.json' with { type: 'json' }
import { stat, timed, type Row } from './measure.ts'

export function startup(iterations: number): Row[] {
  execFileSync('npm', ['run', '-s', 'bundle'], { stdio: 'pipe' })
  const rows: Row[] = []
  const floor = Array.from({ length: iterations }, () => timed(process.execPath, ['-e', '0']))
  const floorStat = stat(floor.map((r) => r.ms))
  const floorMedian = floorStat.median
  rows.push({ scenario: 'start-up', metric: 'node -e 0 (floor)', unit: 'ms', stat: floorStat })
  for (const t of tasks.tasks) {
    const file = `dist/${t.id.replace(':', '-')}.mjs`
    const runs = Array.from({ length: iterations }, () => timed(process.execPath, [file, '--help']))
    if (runs.some((r) => r.code !== 0)) throw new Error(`${file} --help failed: ${runs[0]?.stderr}`)
    const s = stat(runs.map((r) => r.ms))
    const ratio = s.median / floorMedian
    rows.push({ scenario: 'start-up', metric: `${t.id} bundle --help`, unit: 'ms', stat: s, goal: '≤ 1.5× the floor', met: ratio <= 1.5, note: `${ratio.toFixed(2)}× the floor in the same run` })
    rows.push({ scenario: 'start-up', metric: `${t.id} bundle --help peak RSS`, unit: 'MiB', stat: stat(runs.map((r) => r.rssKb / 1024)) })
  }
  const npm = Array.from({ length: iterations }, () => timed('npm', ['run', '-s', 'restore:vm', '--', '--help']))
  rows.push({ scenario: 'start-up', metric: 'restore:vm via npm run --help', unit: 'ms', stat: stat(npm.map((r) => r.ms)), note: 'npm + tsx compile on the fly' })
  return rows
}
