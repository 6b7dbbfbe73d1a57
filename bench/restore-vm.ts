// restore:vm, latest backup over the running VM 101 (safety backup, stop, restore, start, verified),
// `--yes --json`, the fixture put back by reset() before each run; once through tsx (as `npm run
// restore:vm` does) and once as the shipped bundle (dist/restore-vm.mjs, `npm run bundle`), in turn.
//
// The wall time holds much that is not the tool's (issue 14): the node's own restore/vzdump/verify
// work (calls.log work_ms), the wait for the guest to boot (from the end of the start — qmrestore --start 1 — to the agent ping
// that answers: the simulator's agent answers HDR_SIM_RESOURCES_LAG after start; the tool's guest
// checks in that window overlap it), the simulator's own Node.js
// start-up per simulated command (calls.log ms − work_ms; a real node's qm/pvesh are Perl and not free
// either, but they are not this tool's), and the runtime's start-up (`node --import tsx -e 0`, or
// `node -e 0` for the bundle). What is left is the tool's own share, and the goal (≤ 1.5 s) is judged
// on it. It is broken down from the report's per-step `ms`: start-up beyond that floor + config
// loading + exit (wall − the report's durationMs − the floor), the SSH connection to the node (the
// first step), the ping and the SSH login to the guest (beyond the boot wait), and the rest (the other round
// trips' ssh clients and remote shells, the plan, the report). SSH connections per run (sshd.log,
// goal 1) and node commands per run (calls.log + the `hostname` probe the simulator does not log).
import { execFileSync } from 'node:child_process'
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
interface RestoreDoc { exitCode: number; durationMs: number; facts: { sshCommands?: number }; steps: Step[] }

/** One run's figures, in ms unless named otherwise. */
interface Figures { wall: number; work: number; boot: number; sim: number; floor: number; tool: number; startup: number; connect: number; guest: number; rest: number; conns: number; cmds: number; polls: number; trips: number; rss: number }

const stepMs = (doc: RestoreDoc, title: RegExp) => doc.steps.filter((s) => title.test(s.title)).reduce((s, x) => s + x.ms, 0)

export async function restoreVm(iterations: number): Promise<Row[]> {
  await labUp(['node'])
  execFileSync('npm', ['run', '-s', 'bundle'], { cwd: ROOT, stdio: 'pipe' })
  const reports = mkdtempSync(join(tmpdir(), 'hdr-bench-vm-'))
  const env = labEnv({ HDR_REPORTS_DIR: reports })
  const floorOf = (args: string[]) => stat(Array.from({ length: 3 }, () => timed(process.execPath, args, { cwd: ROOT }).ms)).median
  const ways = {
    tsx: { argv: ['--import', 'tsx', join(ROOT, 'scripts/restore-vm.ts')], floorArgs: ['--import', 'tsx', '-e', '0'], runs: [] as Figures[] },
    bundle: { argv: [join(ROOT, 'dist/restore-vm.mjs')], floorArgs: ['-e', '0'], runs: [] as Figures[] },
  }
  let odd = new Set<string>()
  for (let i = 0; i < iterations; i++) {
    for (const way of Object.values(ways)) {
      const floor = floorOf(way.floorArgs) // taken beside each run: this machine's load drifts
      await reset(LAB_DIR) // VM 101 running, its three backups, calls.log empty
      const before = sshConnections()
      const r = timed(process.execPath, [...way.argv, '101', '--yes', '--json'], { env, cwd: ROOT })
      if (r.code !== 0) throw new Error(`bench: restore:vm exited ${r.code}: ${r.stderr.slice(-800)}${r.stdout.slice(-800)}`)
      const doc = JSON.parse(r.stdout) as RestoreDoc
      const log = calls(LAB_DIR)
      // The guest's boot: from the end of `qm start` to the start of the agent ping that answers (the
      // simulator's agent answers 1 s after the start). What the tool does meanwhile (the agent's first
      // ping, the ping and SSH proofs of the guest) overlaps the boot and adds nothing to the wall, so
      // the node's commands inside that window are not subtracted twice. calls.log: t = a command's end.
      const end = (c: (typeof log)[number]) => Date.parse(c.t)
      // the start: qmrestore's own (--start 1) since issue 14's third pass, or a separate qm start
      const started = log.find((c) => (c.argv[0] === 'qmrestore' && c.argv.includes('--start')) || c.argv.join(' ') === 'qm start 101')
      const answered = log.find((c) => c.argv.join(' ') === 'qm guest cmd 101 ping' && c.exit === 0)
      if (!started || !answered) throw new Error('bench: restore:vm ran no qm start or no agent ping that answered')
      const [from, to] = [end(started), end(answered) - answered.ms]
      const boot = to - from
      const outside = log.filter((c) => end(c) <= from || end(c) - c.ms >= to)
      const work = outside.reduce((s, c) => s + (c.work_ms ?? 0), 0)
      const sim = outside.reduce((s, c) => s + c.ms - (c.work_ms ?? 0), 0)
      const tool = r.ms - work - boot - sim - floor
      const startup = r.ms - doc.durationMs - floor
      const connect = stepMs(doc, /^Node '.*' reachable over SSH/)
      // the guest's ping and SSH proofs, as far as they outlast the boot
      const guest = Math.max(0, stepMs(doc, /^SSH login to |answers ping/) - boot)
      way.runs.push({
        wall: r.ms, work, boot, sim, floor, tool, startup, connect, guest, rest: tool - startup - connect - guest,
        conns: sshConnections() - before,
        cmds: log.length + 1, // + `hostname` (a shell script in the simulator: not in calls.log)
        // the agent asked again while the guest boots: a wait, whose count is the boot's, not the tool's
        polls: log.filter((c, i) => c.argv.join(' ') === 'qm guest cmd 101 ping' && log[i - 1]?.argv.join(' ') === 'qm guest cmd 101 ping').length,
        trips: doc.facts.sshCommands ?? NaN,
        rss: r.rssKb / 1024,
      })
      odd = new Set([...odd, ...log.filter((c) => c.exit !== 0).map((c) => `${c.argv.slice(0, 4).join(' ')} → exit ${c.exit}`)])
    }
  }
  await reset(LAB_DIR)
  rmSync(reports, { recursive: true, force: true })
  if (odd.size) process.stderr.write(`bench: restore:vm: node commands that failed (retries): ${[...odd].join('; ')}\n`)
  const S = 'restore:vm (latest, over running VM 101)'
  const col = (runs: Figures[], k: keyof Figures) => stat(runs.map((f) => f[k]))
  const t = ways.tsx.runs, b = ways.bundle.runs
  const tool = col(t, 'tool'), toolB = col(b, 'tool'), c = col(t, 'conns'), n = col(t, 'cmds'), own = stat(t.map((f) => f.cmds - f.polls))
  return [
    { scenario: S, metric: 'wall time, end to end (tsx, as npm run does)', unit: 'ms', stat: col(t, 'wall') },
    { scenario: S, metric: "node's own work (calls.log work_ms)", unit: 'ms', stat: col(t, 'work'), note: 'simulated vzdump, qmrestore, vma verify' },
    { scenario: S, metric: 'waiting for the guest to boot (the start\'s end, qmrestore --start 1 → the agent ping that answers)', unit: 'ms', stat: col(t, 'boot'), note: 'the simulator\'s agent answers 1 s after start; the tool\'s guest proofs overlap it' },
    { scenario: S, metric: 'wall minus node work minus boot wait', unit: 'ms', stat: stat(t.map((f) => f.wall - f.work - f.boot)), note: 'the issue\'s figure: still holds the simulator\'s start-ups and tsx' },
    { scenario: S, metric: "the simulator's commands outside their work (Node.js start-up; calls.log ms − work_ms)", unit: 'ms', stat: col(t, 'sim'), note: 'real qm/pvesh are Perl: not free either, but not the tool\'s' },
    { scenario: S, metric: 'tsx start-up (node --import tsx -e 0, beside each run)', unit: 'ms', stat: col(t, 'floor') },
    { scenario: S, metric: "the tool's own share: wall − node work − boot wait − simulator start-ups − tsx start-up", unit: 'ms', stat: tool, goal: '≤ 1500 ms', met: tool.median <= 1500, note: 'the goal is judged here: what the tool controls' },
    { scenario: S, metric: "of the tool's share: start-up beyond tsx's, config loading, exit (wall − report durationMs − tsx start-up)", unit: 'ms', stat: col(t, 'startup') },
    { scenario: S, metric: "of the tool's share: SSH connection to the node (first step)", unit: 'ms', stat: col(t, 'connect') },
    { scenario: S, metric: "of the tool's share: ping + SSH login to the guest, beyond the boot wait", unit: 'ms', stat: col(t, 'guest') },
    { scenario: S, metric: "of the tool's share: the rest (other round trips' ssh clients and remote shells, plan, report)", unit: 'ms', stat: col(t, 'rest') },
    { scenario: S, metric: 'bundle (dist/restore-vm.mjs): wall time, end to end', unit: 'ms', stat: col(b, 'wall') },
    { scenario: S, metric: "bundle: the tool's own share (as above, node -e 0 in place of tsx)", unit: 'ms', stat: toolB, goal: '≤ 1500 ms', met: toolB.median <= 1500, note: 'what an operator runs after npm run bundle' },
    { scenario: S, metric: "bundle: of the tool's share, start-up beyond node's, config loading, exit", unit: 'ms', stat: col(b, 'startup') },
    { scenario: S, metric: 'SSH connections to the node', unit: 'connections', stat: c, goal: '1', met: c.max <= 1 },
    { scenario: S, metric: 'node commands (calls.log + hostname)', unit: 'commands', stat: n },
    { scenario: S, metric: 'node commands, without the agent pings repeated while the guest boots', unit: 'commands', stat: own, goal: '≤ 12', met: own.median <= 12, note: 'a real guest boots for 10–60 s: one more ping per second of it' },
    { scenario: S, metric: 'SSH round trips (the report\'s sshCommands)', unit: 'round trips', stat: col(t, 'trips') },
    { scenario: S, metric: 'peak RSS', unit: 'MiB', stat: col(t, 'rss') },
  ]
}
