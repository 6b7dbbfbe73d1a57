// restore:vm, latest backup over the running VM 101 (safety backup, stop, restore, start, verified),
// `--yes --json`, the fixture put back by reset() before each run. What this project adds is the wall
// time minus the node's own restore/vzdump/verify work (calls.log work_ms), goal ≤ 1.5 s; the part
// spent waiting for the guest to boot (the simulator's agent delay, HDR_SIM_RESOURCES_LAG) is shown
// apart so the overhead figure is honest. SSH connections per run (sshd.log, goal 1) and remote
// commands per run (calls.log + the `hostname` probe the simulator does not log, goal ≤ 12).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { labEnv, labUp, LAB_DIR, ROOT } from '../test/lab/lab.ts'
import { calls, reset } from '../test/lab/node.ts'
import { stat, timed, type Row } from './measure.ts'

/** `Accepted publickey` lines in the node's sshd.log: one per SSH connection to the node. */
export function sshConnections(): number {
  try {
    return readFileSync(join(LAB_DIR, 'node', 'sshd.log'), 'utf8').split('\n').filter((l) => l.includes('Accepted publickey')).length
  } catch {
    return 0
  }
}

interface Step { title: string; status: string; ms: number }
interface RestoreDoc { exitCode: number; facts: { sshCommands?: number }; steps: Step[] }

export async function restoreVm(iterations: number): Promise<Row[]> {
  await labUp(['node'])
  const reports = mkdtempSync(join(tmpdir(), 'hdr-bench-vm-'))
  const env = labEnv({ HDR_REPORTS_DIR: reports })
  const m = { wall: [] as number[], work: [] as number[], boot: [] as number[], overhead: [] as number[], overheadNoTsx: [] as number[], simStart: [] as number[], conns: [] as number[], cmds: [] as number[], ssh: [] as number[], rss: [] as number[] }
  const tsx = stat(Array.from({ length: 3 }, () => timed(process.execPath, ['--import', 'tsx', '-e', '0'], { cwd: ROOT }).ms)).median
  let odd = new Set<string>()
  for (let i = 0; i < iterations; i++) {
    await reset(LAB_DIR) // VM 101 running, its three backups, calls.log empty
    const before = sshConnections()
    const r = timed(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/restore-vm.ts'), '101', '--yes', '--json'], { env, cwd: ROOT })
    if (r.code !== 0) throw new Error(`bench: restore:vm exited ${r.code}: ${r.stderr.slice(-800)}${r.stdout.slice(-800)}`)
    const doc = JSON.parse(r.stdout) as RestoreDoc
    const log = calls(LAB_DIR)
    const work = log.reduce((s, c) => s + (c.work_ms ?? 0), 0)
    // Waiting for the guest to boot: the agent step (the simulator's agent answers HDR_SIM_RESOURCES_LAG
    // after start; everything before it is our own checks). Ping/SSH to the guest are real checks: kept.
    const boot = doc.steps.filter((s) => /^Guest agent answers/.test(s.title)).reduce((s, x) => s + x.ms, 0)
    m.wall.push(r.ms)
    m.work.push(work)
    m.boot.push(boot)
    m.overhead.push(r.ms - work - boot)
    m.overheadNoTsx.push(r.ms - work - boot - tsx)
    m.simStart.push(log.reduce((s, c) => s + c.ms - (c.work_ms ?? 0), 0))
    m.conns.push(sshConnections() - before)
    m.cmds.push(log.length + 1) // + `hostname` (a shell script in the simulator: not in calls.log)
    m.ssh.push(doc.facts.sshCommands ?? NaN)
    m.rss.push(r.rssKb / 1024)
    odd = new Set([...odd, ...log.filter((c) => c.exit !== 0).map((c) => `${c.argv.slice(0, 4).join(' ')} → exit ${c.exit}`)])
  }
  await reset(LAB_DIR)
  rmSync(reports, { recursive: true, force: true })
  if (odd.size) process.stderr.write(`bench: restore:vm: node commands that failed (retries): ${[...odd].join('; ')}\n`)
  const o = stat(m.overhead), c = stat(m.conns), n = stat(m.cmds)
  const S = 'restore:vm (latest, over running VM 101)'
  return [
    { scenario: S, metric: 'wall time, end to end', unit: 'ms', stat: stat(m.wall) },
    { scenario: S, metric: "node's own work (calls.log work_ms)", unit: 'ms', stat: stat(m.work), note: 'simulated vzdump, qmrestore, vma verify' },
    { scenario: S, metric: 'waiting for the guest to boot (agent step)', unit: 'ms', stat: stat(m.boot), note: 'the simulator\'s agent answers 1 s after start' },
    { scenario: S, metric: 'wall minus node work minus boot wait', unit: 'ms', stat: o, goal: '≤ 1500 ms', met: o.median <= 1500, note: `includes ~${Math.round(tsx)} ms of tsx start-up` },
    { scenario: S, metric: 'the same without tsx start-up (node --import tsx -e 0)', unit: 'ms', stat: stat(m.overheadNoTsx) },
    { scenario: S, metric: "of which the simulator's commands outside their work (Node.js start-up; calls.log ms − work_ms)", unit: 'ms', stat: stat(m.simStart), note: 'real qm/pvesh are Perl: not free either' },
    { scenario: S, metric: 'SSH connections to the node', unit: 'connections', stat: c, goal: '1', met: c.max <= 1 },
    { scenario: S, metric: 'remote commands (calls.log + hostname)', unit: 'commands', stat: n, goal: '≤ 12', met: n.median <= 12 },
    { scenario: S, metric: 'SSH round trips (the report\'s sshCommands)', unit: 'round trips', stat: stat(m.ssh) },
    { scenario: S, metric: 'peak RSS', unit: 'MiB', stat: stat(m.rss) },
  ]
}
