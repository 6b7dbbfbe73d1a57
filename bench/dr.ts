// The drill, timed: the lab wiped (every guest destroyed, S3 data and the monitoring stack wiped with
// them), then `dr --yes`. Records the whole drill (goal ≤ 5 min here), each step's seconds (from the
// dr report), and dr's own overhead: its wall time minus the durations the tasks it ran report.
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stat, timed, type Row } from './measure.ts'
import { FIXTURE, LAB_DIR, labEnv, labUp, ROOT } from '../test/lab/lab.ts'
import * as node from '../test/lab/node.ts'
import { terraformEnv } from '../test/lab/s3.ts'
import { commandLine } from '../lib/ssh.ts'

export async function drDrill(n: number): Promise<Row[]> {
  await labUp()
  const tf = mkdtempSync(join(tmpdir(), 'hdr-bench-dr-tf-'))
  const tmp = mkdtempSync(join(tmpdir(), 'hdr-bench-dr-'))
  cpSync(FIXTURE, tf, { recursive: true, filter: (p) => !p.includes('.terraform') && !/\.tfstate/.test(p) })
  for (const e of ['lab', 'minio', 'monitoring']) rmSync(join(tf, 'environments', e), { recursive: true, force: true })
  const main = join(tf, 'environments', 'prod', 'main.tf')
  writeFileSync(main, readFileSync(main, 'utf8').replace(/key\s*=\s*"[^"]*"/, `key = "bench-dr/${process.pid}/terraform.tfstate"`))
  const onNode = (...argv: string[]) => spawnSync('ssh', [...node.sshArgs(LAB_DIR), 'pve', commandLine(argv)])
  const total: number[] = []
  const overhead: number[] = []
  const steps = new Map<string, number[]>()
  try {
    for (let i = 0; i < n; i++) {
      const reports = join(tmp, `reports-${i}`)
      const env = labEnv({ HOMELAB_TF_DIR: tf, HDR_NOW: '2026-11-25T12:00:00', HDR_REPORTS_DIR: reports, HDR_STATE_DIR: join(tmp, 'state'), AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '' })
      await node.reset(LAB_DIR)
      onNode('qm', 'destroy', '102')
      for (const args of [['init', '-input=false', '-reconfigure'], ['apply', '-auto-approve', '-input=false']]) spawnSync('terraform', [`-chdir=${join(tf, 'environments', 'prod')}`, ...args], { env: { ...terraformEnv(LAB_DIR, 'bench-dr'), TF_DATA_DIR: undefined } })
      timed(process.execPath, ['--import', 'tsx', 'scripts/restore-state.ts', 'snapshot'], { env, cwd: ROOT })
      for (const [tool, id] of [['qm', '101'], ['pct', '110'], ['pct', '120'], ['qm', '200']] as const) { onNode(tool, 'stop', id); onNode(tool, 'destroy', id, '--purge', '1') }
      const r = timed(process.execPath, ['--import', 'tsx', 'scripts/dr.ts', '--yes'], { env, cwd: ROOT })
      if (r.code !== 0) throw new Error(`dr --yes exited ${r.code}: ${r.stderr.slice(-2000)}`)
      const docs = readdirSync(reports).filter((f) => f.endsWith('.json') && f !== 'dr-run.json').map((f) => JSON.parse(readFileSync(join(reports, f), 'utf8')) as { task: string; durationMs: number; facts: { timings?: Array<{ title: string; seconds?: number }> } })
      const dr = docs.find((d) => d.task === 'dr')!
      total.push(r.ms / 1000)
      overhead.push((dr.durationMs - docs.filter((d) => d.task !== 'dr').reduce((s, d) => s + d.durationMs, 0)) / 1000)
      for (const t of dr.facts.timings ?? []) steps.set(t.title, [...(steps.get(t.title) ?? []), t.seconds ?? 0])
    }
  } finally {
    rmSync(tf, { recursive: true, force: true })
    rmSync(tmp, { recursive: true, force: true })
  }
  const rows: Row[] = [
    { scenario: 'dr drill', metric: 'whole drill (wiped lab → dr --yes)', unit: 's', stat: stat(total), goal: '≤ 300', met: stat(total).median <= 300 },
    { scenario: 'dr drill', metric: 'dr overhead beyond its tasks', unit: 's', stat: stat(overhead) },
  ]
  for (const [title, v] of steps) rows.push({ scenario: 'dr drill', metric: `step: ${title}`, unit: 's', stat: stat(v) })
  return rows
}
