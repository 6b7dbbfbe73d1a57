// verify:backups --restore-test: the tool's overhead per test restore. Two runs on the fixture node,
// each after reset(): A = `verify:backups --json` (the file checks alone), B = the same plus
// `--restore-test --vmid 101,110 --yes` (VM 101 and CT 110 restored into scratch IDs, made harmless,
// started, proven, destroyed). Per test restore: (B − A) minus the node's own extra work (calls.log
// work_ms: qmrestore, pct restore, archive probes) minus the wait for the guests to boot (the
// simulator's agent answers HDR_SIM_RESOURCES_LAG after start), divided by 2. Also the extra remote
// commands and SSH connections per test restore.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { labEnv, labUp, LAB_DIR, ROOT } from '../test/lab/lab.ts'
import { calls, reset } from '../test/lab/node.ts'
import { stat, timed, type Row } from './measure.ts'
import { sshConnections } from './restore-vm.ts'

interface Doc { exitCode: number; facts: { restoreTests?: Array<{ status: string; bootSeconds?: number }> } }
const GUESTS = 2

export async function restoreTest(iterations: number): Promise<Row[]> {
  await labUp(['node'])
  const reports = mkdtempSync(join(tmpdir(), 'hdr-bench-rt-'))
  const env = labEnv({ HDR_REPORTS_DIR: reports, HDR_NOW: '2026-11-26T12:00:00' })
  const script = join(ROOT, 'scripts/verify-backups.ts')
  const base = ['--import', 'tsx', script, '--max-age', '80', '--json']
  const m = { a: [] as number[], b: [] as number[], work: [] as number[], boot: [] as number[], per: [] as number[], cmds: [] as number[], conns: [] as number[], rss: [] as number[] }
  const work = () => calls(LAB_DIR).reduce((s, c) => s + (c.work_ms ?? 0), 0)
  for (let i = 0; i < iterations; i++) {
    await reset(LAB_DIR)
    const a = timed(process.execPath, base, { env, cwd: ROOT })
    const workA = work()
    const cmdsA = calls(LAB_DIR).length
    await reset(LAB_DIR)
    const before = sshConnections()
    const b = timed(process.execPath, [...base, '--restore-test', '--vmid', '101,110', '--yes'], { env, cwd: ROOT })
    const doc = JSON.parse(b.stdout) as Doc
    const tests = doc.facts.restoreTests ?? []
    if (tests.length !== GUESTS || tests.some((t) => t.status !== 'ok')) throw new Error(`bench: restore tests did not pass: ${JSON.stringify(tests)}\n${b.stderr.slice(-800)}`)
    const extraWork = work() - workA
    const boot = tests.reduce((s, t) => s + (t.bootSeconds ?? 0) * 1000, 0)
    m.a.push(a.ms)
    m.b.push(b.ms)
    m.work.push(extraWork / GUESTS)
    m.boot.push(boot / GUESTS)
    m.per.push((b.ms - a.ms - extraWork - boot) / GUESTS)
    m.cmds.push((calls(LAB_DIR).length - cmdsA) / GUESTS)
    m.conns.push(sshConnections() - before)
    m.rss.push(b.rssKb / 1024)
  }
  await reset(LAB_DIR)
  rmSync(reports, { recursive: true, force: true })
  const per = stat(m.per)
  const S = 'verify:backups --restore-test (VM 101 + CT 110)'
  return [
    { scenario: S, metric: 'wall time, file checks only (A)', unit: 'ms', stat: stat(m.a) },
    { scenario: S, metric: 'wall time, with the two test restores (B)', unit: 'ms', stat: stat(m.b) },
    { scenario: S, metric: "node's own extra work per test restore (calls.log work_ms)", unit: 'ms', stat: stat(m.work), note: 'simulated restore and archive probe' },
    { scenario: S, metric: 'waiting for the copy to boot, per test restore', unit: 'ms', stat: stat(m.boot), note: "the simulator's agent answers 1 s after start" },
    { scenario: S, metric: "overhead per test restore: (B − A − node work − boot wait) / 2", unit: 'ms', stat: per, goal: '≤ 3000 ms', met: per.median <= 3000, note: 'our checks, set, start, destroy and their round trips' },
    { scenario: S, metric: 'remote commands per test restore (calls.log)', unit: 'commands', stat: stat(m.cmds) },
    { scenario: S, metric: 'SSH connections for run B', unit: 'connections', stat: stat(m.conns), note: 'verify\'s own + one for the test restores' },
    { scenario: S, metric: 'peak RSS of run B', unit: 'MiB', stat: stat(m.rss) },
  ]
}
