// Start-up: --help of each bundle in dist/ and of the same script through npm, against the floor
// (`node -e 0`). Goal (issue 14): every bundle ≤ 1.5× that floor, measured in the same rounds.
import { execFileSync } from 'node:child_process'
import tasks from '../tasks.json' with { type: 'json' }
import { stat, timed, type Row } from './measure.ts'

export function startup(iterations: number): Row[] {
  execFileSync('npm', ['run', '-s', 'bundle'], { stdio: 'pipe' })
  // ~0.15 s each: four times the scenario's iterations, in rounds (the floor, then every bundle), so
  // a busy moment of the machine weighs on the floor and the bundles alike; each ratio is the median
  // of the rounds' own ratios.
  const rounds = iterations * 4
  const files = tasks.tasks.map((t) => ({ id: t.id, file: `dist/${t.id.replace(':', '-')}.mjs` }))
  const floor: number[] = []
  const runs = new Map(files.map((f) => [f.id, [] as ReturnType<typeof timed>[]]))
  for (let i = 0; i < rounds; i++) {
    floor.push(timed(process.execPath, ['-e', '0']).ms)
    for (const f of files) runs.get(f.id)!.push(timed(process.execPath, [f.file, '--help']))
  }
  const rows: Row[] = [{ scenario: 'start-up', metric: 'node -e 0 (floor)', unit: 'ms', stat: stat(floor) }]
  for (const f of files) {
    const r = runs.get(f.id)!
    if (r.some((x) => x.code !== 0)) throw new Error(`${f.file} --help failed: ${r[0]?.stderr}`)
    const ratio = stat(r.map((x, i) => x.ms / floor[i]!))
    rows.push({ scenario: 'start-up', metric: `${f.id} bundle --help`, unit: 'ms', stat: stat(r.map((x) => x.ms)) })
    rows.push({ scenario: 'start-up', metric: `${f.id} bundle --help / the floor`, unit: '×', stat: ratio, goal: '≤ 1.5×', met: ratio.median <= 1.5 })
    rows.push({ scenario: 'start-up', metric: `${f.id} bundle --help peak RSS`, unit: 'MiB', stat: stat(r.map((x) => x.rssKb / 1024)) })
  }
  const npm = Array.from({ length: iterations }, () => timed('npm', ['run', '-s', 'restore:vm', '--', '--help']))
  rows.push({ scenario: 'start-up', metric: 'restore:vm via npm run --help', unit: 'ms', stat: stat(npm.map((r) => r.ms)), note: 'npm + tsx compile on the fly' })
  return rows
}
