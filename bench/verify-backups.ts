// verify:backups against the lab node.
// (a) Throughput: larger VMA archives (the simulator's writer + real zstd) in the lab's dump folder,
//     `verify:backups --vmid 901` end to end vs plain `zstd -q -t` one file after another over the same
//     files, in one SSH command to the same node, in the same iteration → the ratio, goal ≥ 0.9×. Also
//     the node script alone (same input, same ssh) and with `vma` replaced by a stand-in that only reads
//     its stdin: the lab's `vma` is a Node.js simulator, far slower than the C one.
// (b) Listing and metadata checks (`--dry-run`, no archive read) for 10, 100 and 1,000 extra backup
//     files (copies of a small fixture archive under new vzdump names): goal ≤ 5 s at 1,000, and SSH
//     round trips (sshd.log, calls.log, the report) that do not grow with the count.
// Every set is removed by reset() when done.
import { spawnSync } from 'node:child_process'
import { copyFileSync, chmodSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { randomFillSync } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { labEnv, labUp, LAB_DIR, ROOT } from '../test/lab/lab.ts'
import { calls, reset, sshArgs } from '../test/lab/node.ts'
import { writeVma } from '../test/lab/pve-sim/lib/vma.mjs'
import { VZDUMP_NAME, type Backup } from '../lib/backups.ts'
import { commandLine } from '../lib/ssh.ts'
import { NODE_SCRIPT, nodeInput } from '../lib/verify.ts'
import { stat, timed, type Row, type Run } from './measure.ts'
import { sshConnections } from './restore-vm.ts'

const MiB = 1024 * 1024
const DUMP = join(LAB_DIR, 'pve', 'var', 'lib', 'vz', 'dump')
const VMID = 901
const pad = (n: number) => String(n).padStart(2, '0')
const stamp = (d: Date) => `${d.getFullYear()}_${pad(d.getMonth() + 1)}_${pad(d.getDate())}-${pad(d.getHours())}_${pad(d.getMinutes())}_${pad(d.getSeconds())}`
const logText = (vmid: number, when: Date) => {
  const t = `${d10(when)} ${pad(when.getHours())}:${pad(when.getMinutes())}:${pad(when.getSeconds())}`
  return [`${t} INFO: Starting Backup of VM ${vmid} (qemu)`, `${t} INFO: status = running`, `${t} INFO: backup mode: snapshot`, `${t} INFO: Finished Backup of VM ${vmid} (00:00:05)`, ''].join('\n')
}
const d10 = (d: Date) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`

/** One command on the node over a fresh SSH connection (like a cron job would). */
function onNode(argv: string[], input?: string): Run {
  return timed('ssh', [...sshArgs(LAB_DIR), 'pve', commandLine(argv)], { input })
}

function runVerify(args: string[]): { run: Run; doc: VerifyDoc } {
  const run = timed(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/verify-backups.ts'), ...args, '--json'], { env, cwd: ROOT })
  if (run.code !== 0 && run.code !== 5) throw new Error(`bench: verify:backups ${args.join(' ')} exited ${run.code}: ${run.stderr.slice(-800)}${run.stdout.slice(-400)}`)
  return { run, doc: JSON.parse(run.stdout) as VerifyDoc }
}
interface VerifyDoc { exitCode: number; facts: { counts: { failed: number }; 'node:pve': { files: number; bytes: number; sshCommands: number }; items: Array<{ kind: string; status: string; file?: string }> } }
let env: NodeJS.ProcessEnv = {}

// ---- (a) throughput ----

/** 4 bits of entropy per byte (values 0–15): zstd makes about 2:1 of it, like a used disk. */
function nibblePool(bytes: number): Buffer {
  const b = randomFillSync(Buffer.allocUnsafe(bytes))
  const w = new Uint32Array(b.buffer, b.byteOffset, bytes / 4)
  for (let i = 0; i < w.length; i++) w[i]! &= 0x0f0f0f0f
  return b
}

/** Write `sizes` (MiB of .vma.zst wanted, ~2:1) as VMID 901's backups, newest first, each with its log. */
function makeArchives(sizes: number[]): Backup[] {
  const poolMiB = 31 // a prime: a 1 MiB slice recurs only 31 MiB later, beyond zstd's window
  const pool = nibblePool(poolMiB * MiB)
  const out: Backup[] = []
  const now = Date.now()
  sizes.forEach((want, i) => {
    const rawMiB = want * 2
    const disk = Buffer.allocUnsafe(rawMiB * MiB)
    for (let k = 0; k < rawMiB; k++) pool.copy(disk, k * MiB, ((i * 7 + k * 13) % poolMiB) * MiB, ((i * 7 + k * 13) % poolMiB + 1) * MiB)
    const when = new Date(now - (i + 1) * 3600_000)
    when.setMilliseconds(0)
    const vma = writeVma({ configs: [{ name: 'qemu-server.conf', data: `name: bench${i}\nscsi0: local-lvm:vm-${VMID}-disk-0,size=${rawMiB}M\n` }], devices: [{ name: 'drive-scsi0', data: disk }], ctime: Math.floor(when.getTime() / 1000) })
    const base = `vzdump-qemu-${VMID}-${stamp(when)}`
    const file = `${base}.vma.zst`
    const z = spawnSync('zstd', ['-q', '-3', '-T0', '-f', '-o', join(DUMP, file)], { input: vma, maxBuffer: 1024 })
    if (z.status !== 0) throw new Error(`bench: zstd failed: ${z.stderr}`)
    writeFileSync(join(DUMP, `${base}.log`), logText(VMID, when))
    const size = statSync(join(DUMP, file)).size
    out.push({ volid: `local:backup/${file}`, storage: 'local', file, vmid: VMID, type: 'qemu', format: 'vma.zst', compression: 'zst', size, ctime: Math.floor(when.getTime() / 1000), notes: undefined, protected: false })
  })
  return out
}

async function throughput(iterations: number, quick: boolean): Promise<Row[]> {
  await reset(LAB_DIR)
  const sizes = quick ? [16, 24] : [50, 70, 90, 110, 130, 150, 175, 200]
  const t0 = performance.now()
  const files = makeArchives(sizes)
  const genMs = performance.now() - t0
  const bytes = files.reduce((s, f) => s + f.size, 0)
  const paths = files.map((f) => join(DUMP, f.file))
  process.stderr.write(`bench: verify:backups: ${files.length} archives, ${(bytes / MiB).toFixed(0)} MiB of .vma.zst made in ${(genMs / 1000).toFixed(1)} s\n`)
  const stub = mkdtempSync(join(tmpdir(), 'hdr-bench-vma-'))
  writeFileSync(join(stub, 'vma'), '#!/bin/sh\n# stand-in for a C `vma verify -`: reads the whole stream, checks nothing\nexec cat >/dev/null\n')
  chmodSync(join(stub, 'vma'), 0o755)
  chmodSync(stub, 0o755)
  const zstdLoop = ['bash', '-c', 'for f; do zstd -q -t "$f" || exit 1; done', 'hdr', ...paths]
  const input = nodeInput(files.map((backup, id) => ({ id, path: join(DUMP, backup.file), backup })), () => DUMP)
  const script = ['bash', '-c', NODE_SCRIPT, 'hdr', '0', 'full']
  // PATH set inside the script: bash run by sshd reads the node's ~/.bashrc, which resets PATH
  const stubbed = ['bash', '-c', `PATH=${stub}:$PATH\n${NODE_SCRIPT}`, 'hdr', '0', 'full']
  const m = { zstd: [] as number[], tool: [] as number[], script: [] as number[], stub: [] as number[], ratio: [] as number[], ratioScript: [] as number[], ratioStub: [] as number[], vma: [] as number[], conns: [] as number[], ssh: [] as number[], rss: [] as number[] }
  const mbps = (ms: number) => bytes / 1e6 / (ms / 1000)
  try {
    onNode(zstdLoop) // page cache warm for everyone
    for (let i = 0; i < iterations; i++) {
      const z = onNode(zstdLoop)
      if (z.code !== 0) throw new Error(`bench: zstd -t loop failed: ${z.stderr}`)
      const c0 = calls(LAB_DIR).length
      const s0 = sshConnections()
      const v = runVerify(['--vmid', String(VMID)])
      const bad = v.doc.facts.items.filter((x) => x.kind === 'file' && x.status !== 'ok')
      if (v.doc.facts['node:pve'].files !== files.length || bad.length) throw new Error(`bench: verify:backups saw ${v.doc.facts['node:pve'].files} files, ${bad.length} not ok`)
      m.conns.push(sshConnections() - s0)
      m.vma.push(calls(LAB_DIR).slice(c0).filter((c) => c.argv[0] === 'vma').reduce((s, c) => s + c.ms, 0))
      const sc = onNode(script, input)
      const st = onNode(stubbed, input)
      for (const [what, r] of [['node script', sc], ['stand-in', st]] as const) {
        const lines = r.stdout.trim().split('\n')
        if (r.code !== 0 || lines.length !== files.length || lines.some((l) => !/\tok\tok\tskip\tok$/.test(l))) throw new Error(`bench: ${what} run: ${r.stdout.slice(0, 400)} ${r.stderr.slice(0, 400)}`)
      }
      m.zstd.push(z.ms)
      m.tool.push(v.run.ms)
      m.script.push(sc.ms)
      m.stub.push(st.ms)
      m.ratio.push(z.ms / v.run.ms)
      m.ratioScript.push(z.ms / sc.ms)
      m.ratioStub.push(z.ms / st.ms)
      m.ssh.push(v.doc.facts['node:pve'].sshCommands)
      m.rss.push(v.run.rssKb / 1024)
    }
  } finally {
    rmSync(stub, { recursive: true, force: true })
    await reset(LAB_DIR)
  }
  const S = `verify:backups, ${files.length} × ${sizes[0]}–${sizes.at(-1)} MiB .vma.zst (${(bytes / MiB).toFixed(0)} MiB)`
  const r = stat(m.ratio)
  return [
    { scenario: S, metric: 'plain `zstd -q -t` one file after another (one ssh command): wall', unit: 'ms', stat: stat(m.zstd) },
    { scenario: S, metric: 'plain `zstd -q -t`: throughput', unit: 'MB/s', stat: stat(m.zstd.map(mbps)) },
    { scenario: S, metric: 'verify:backups --vmid 901, end to end: wall', unit: 'ms', stat: stat(m.tool) },
    { scenario: S, metric: 'verify:backups: throughput', unit: 'MB/s', stat: stat(m.tool.map(mbps)) },
    { scenario: S, metric: 'ratio verify:backups / zstd -t (same iteration)', unit: '×', stat: r, goal: '≥ 0.9×', met: r.median >= 0.9 },
    { scenario: S, metric: 'ratio, its node script alone (same ssh, same input)', unit: '×', stat: stat(m.ratioScript) },
    { scenario: S, metric: 'ratio, node script with `vma` a stand-in that only reads stdin', unit: '×', stat: stat(m.ratioStub), note: 'what a C vma verify costs, roughly' },
    { scenario: S, metric: "process time of the simulator's vma (sum over files, calls.log ms)", unit: 'ms', stat: stat(m.vma), note: 'Node.js; two files at a time on 2 cores' },
    { scenario: S, metric: 'SSH connections to the node (sshd.log)', unit: 'connections', stat: stat(m.conns), goal: '1', met: stat(m.conns).max <= 1 },
    { scenario: S, metric: "SSH commands (the report's sshCommands)", unit: 'commands', stat: stat(m.ssh) },
    { scenario: S, metric: 'peak RSS (verify:backups)', unit: 'MiB', stat: stat(m.rss) },
  ]
}

// ---- (b) listing and metadata checks ----

function makeCopies(n: number): void {
  const src = 'vzdump-qemu-101-2026_11_25-03_00_02'
  for (let k = 0; k < n; k++) {
    const vmid = 3000 + Math.floor(k / 10)
    const when = new Date(2026, 10, 10 + (k % 10), 3, 0, 2)
    const base = `vzdump-qemu-${vmid}-${stamp(when)}`
    copyFileSync(join(DUMP, `${src}.vma.zst`), join(DUMP, `${base}.vma.zst`))
    writeFileSync(join(DUMP, `${base}.log`), logText(vmid, when))
  }
}

async function metadata(iterations: number, quick: boolean): Promise<Row[]> {
  const rows: Row[] = []
  const counts = quick ? [10, 100] : [10, 100, 1000]
  let sshAtFirst: number | undefined
  try {
    for (const n of counts) {
      await reset(LAB_DIR)
      const fixture = readdirSync(DUMP).filter((f) => VZDUMP_NAME.test(f)).length
      makeCopies(n)
      const m = { wall: [] as number[], conns: [] as number[], nodeCmds: [] as number[], ssh: [] as number[], rss: [] as number[] }
      for (let i = 0; i < iterations; i++) {
        const c0 = calls(LAB_DIR).length
        const s0 = sshConnections()
        const v = runVerify(['--dry-run'])
        const listed = v.doc.facts['node:pve'].files
        if (listed !== n + fixture) throw new Error(`bench: the node listed ${listed} files, expected ${n} + ${fixture}`)
        if (v.doc.facts.counts.failed) throw new Error(`bench: verify:backups --dry-run: ${v.doc.facts.counts.failed} failed`)
        m.wall.push(v.run.ms)
        m.conns.push(sshConnections() - s0)
        m.nodeCmds.push(calls(LAB_DIR).length - c0 + 1) // + hostname
        m.ssh.push(v.doc.facts['node:pve'].sshCommands)
        m.rss.push(v.run.rssKb / 1024)
      }
      const S = `verify:backups --dry-run, ${n} + ${fixture} files`
      const w = stat(m.wall), s = stat(m.ssh)
      sshAtFirst ??= s.max
      rows.push(
        { scenario: S, metric: 'listing + metadata checks, end to end', unit: 'ms', stat: w, ...(n === 1000 ? { goal: '≤ 5000 ms', met: w.median <= 5000 } : {}) },
        { scenario: S, metric: "SSH commands (the report's sshCommands)", unit: 'commands', stat: s, goal: 'same at every count', met: s.max === sshAtFirst },
        { scenario: S, metric: 'SSH connections to the node (sshd.log)', unit: 'connections', stat: stat(m.conns) },
        { scenario: S, metric: 'node commands (calls.log + hostname)', unit: 'commands', stat: stat(m.nodeCmds) },
        { scenario: S, metric: 'peak RSS', unit: 'MiB', stat: stat(m.rss) },
      )
    }
  } finally {
    await reset(LAB_DIR)
  }
  return rows
}

export async function verifyBackups(iterations: number, quick: boolean): Promise<Row[]> {
  await labUp(['node'])
  env = labEnv({ HDR_REPORTS_DIR: mkdtempSync(join(tmpdir(), 'hdr-bench-verify-')) })
  try {
    return [...(await throughput(iterations, quick)), ...(await metadata(iterations, quick))]
  } finally {
    rmSync(env.HDR_REPORTS_DIR!, { recursive: true, force: true })
  }
}
