// verify:backups against the lab node.
// (a) Throughput: VMA archives (the simulator's writer + real zstd) in the lab's dump folder, in two sets:
//     mixed sizes (8 × 50–200 MiB) and one ≥ 1 GiB archive among many small ones (where the order in
//     which files reach the cores shows). The baseline is the node's real limit: `zstd -q -t` on every
//     core at once (xargs -P$(nproc), in the listing order), in one SSH command, in the same iteration as
//     what it is compared with → ratios. Compared: verify:backups end to end (as `npm run` starts it and
//     as the shipped bundle), its node script alone (same input, same ssh), the script with `vma`
//     replaced by a stand-in that only reads its stdin (the lab's `vma` is a Node.js simulator, far
//     slower to start than the C one), and the floor of any pipe into vma (`zstd -d | cat`).
// (b) Listing and metadata checks (`--dry-run`, no archive read) for 10, 100 and 1,000 extra backup
//     files (copies of a small fixture archive under new vzdump names): goal ≤ 5 s at 1,000, and SSH
//     round trips (sshd.log, calls.log, the report) that do not grow with the count.
// Every set is removed by reset() when done.
import { execFileSync, spawnSync } from 'node:child_process'
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

/** verify:backups as `npm run` starts it (tsx) or as the shipped single file (dist/, npm run bundle). */
function runVerify(args: string[], how: 'tsx' | 'bundle' = 'tsx'): { run: Run; doc: VerifyDoc } {
  const entry = how === 'tsx' ? ['--import', 'tsx', join(ROOT, 'scripts/verify-backups.ts')] : [join(ROOT, 'dist/verify-backups.mjs')]
  const run = timed(process.execPath, [...entry, ...args, '--json'], { env, cwd: ROOT })
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

/** One set of archives: the node's real limit is parallel `zstd -t` (every core decompressing). */
async function throughput(iterations: number, sizes: number[], label: string): Promise<Row[]> {
  await reset(LAB_DIR)
  const t0 = performance.now()
  const files = makeArchives(sizes)
  const genMs = performance.now() - t0
  const bytes = files.reduce((s, f) => s + f.size, 0)
  const listed = files.map((f) => join(DUMP, f.file)).sort() // the storage's listing order (by name)
  const largest = [...files].sort((a, b) => b.size - a.size).map((f) => join(DUMP, f.file))
  process.stderr.write(`bench: verify:backups: ${files.length} archives, ${(bytes / MiB).toFixed(0)} MiB of .vma.zst made in ${(genMs / 1000).toFixed(1)} s\n`)
  const stub = mkdtempSync(join(tmpdir(), 'hdr-bench-vma-'))
  writeFileSync(join(stub, 'vma'), '#!/bin/sh\n# stand-in for a C `vma verify -`: reads the whole stream, checks nothing\nexec cat >/dev/null\n')
  chmodSync(join(stub, 'vma'), 0o755)
  chmodSync(stub, 0o755)
  const parallel = (cmd: string, paths: string[]) => ['bash', '-c', `printf '%s\\0' "$@" | xargs -0 -P"$(nproc)" -I{} ${cmd}`, 'hdr', ...paths]
  const zstdParallel = parallel('zstd -q -t {}', listed)
  const zstdLargest = parallel('zstd -q -t {}', largest)
  const floor = parallel(`sh -c 'zstd -q -d -c "$1" | cat >/dev/null' sh {}`, largest)
  const zstdSerial = ['bash', '-c', 'for f; do zstd -q -t "$f" || exit 1; done', 'hdr', ...listed]
  const input = nodeInput(files.map((backup, id) => ({ id, path: join(DUMP, backup.file), backup })), () => DUMP)
  const script = ['bash', '-c', NODE_SCRIPT, 'hdr', '0', 'full']
  // PATH set inside the script: bash run by sshd reads the node's ~/.bashrc, which resets PATH
  const stubbed = ['bash', '-c', `PATH=${stub}:$PATH\n${NODE_SCRIPT}`, 'hdr', '0', 'full']
  const m: Record<string, number[]> = {}
  const push = (k: string, v: number) => (m[k] ??= []).push(v)
  const mbps = (ms: number) => bytes / 1e6 / (ms / 1000)
  const ok = (what: string, r: Run) => { if (r.code !== 0) throw new Error(`bench: ${what} failed: ${r.stderr.slice(0, 400)}`); return r }
  try {
    ok('zstd -t', onNode(zstdParallel)) // page cache warm for everyone
    for (let i = 0; i < iterations; i++) {
      const z = ok('parallel zstd -t', onNode(zstdParallel))
      push('zstd', z.ms)
      push('zstdSerial', ok('zstd -t loop', onNode(zstdSerial)).ms)
      push('zstdLargest', ok('parallel zstd -t, largest first', onNode(zstdLargest)).ms)
      push('floor', ok('parallel zstd -d | cat', onNode(floor)).ms)
      for (const [key, cmd] of [['tool', 'tsx'], ['bundle', 'bundle']] as const) {
        const c0 = calls(LAB_DIR).length
        const s0 = sshConnections()
        const v = runVerify(['--vmid', String(VMID)], cmd)
        const bad = v.doc.facts.items.filter((x) => x.kind === 'file' && x.status !== 'ok')
        if (v.doc.facts['node:pve'].files !== files.length || bad.length) throw new Error(`bench: verify:backups saw ${v.doc.facts['node:pve'].files} files, ${bad.length} not ok`)
        push(key, v.run.ms)
        if (key === 'tool') {
          push('conns', sshConnections() - s0)
          push('vma', calls(LAB_DIR).slice(c0).filter((c) => c.argv[0] === 'vma').reduce((s, c) => s + c.ms, 0))
          push('ssh', v.doc.facts['node:pve'].sshCommands)
          push('rss', v.run.rssKb / 1024)
        }
      }
      for (const [key, cmd] of [['script', script], ['stub', stubbed]] as const) {
        const r = onNode(cmd, input)
        const lines = r.stdout.trim().split('\n')
        if (r.code !== 0 || lines.length !== files.length || lines.some((l) => !/\tok\tok\tskip\tok$/.test(l))) throw new Error(`bench: ${key} run: ${r.stdout.slice(0, 400)} ${r.stderr.slice(0, 400)}`)
        push(key, r.ms)
      }
      for (const k of ['zstdSerial', 'zstdLargest', 'floor', 'tool', 'bundle', 'script', 'stub']) push(`ratio:${k}`, z.ms / m[k]!.at(-1)!)
    }
  } finally {
    rmSync(stub, { recursive: true, force: true })
    await reset(LAB_DIR)
  }
  const S = `verify:backups, ${label} (${files.length} .vma.zst, ${(bytes / MiB).toFixed(0)} MiB)`
  const ratio = (k: string, metric: string, goal?: number, note?: string): Row => {
    const r = stat(m[`ratio:${k}`]!)
    return { scenario: S, metric, unit: '×', stat: r, ...(goal ? { goal: `≥ ${goal}×`, met: r.median >= goal } : {}), ...(note ? { note } : {}) }
  }
  return [
    { scenario: S, metric: 'baseline: `zstd -q -t` in parallel, one per core (xargs -P$(nproc), listing order): wall', unit: 'ms', stat: stat(m.zstd!) },
    { scenario: S, metric: 'baseline: throughput', unit: 'MB/s', stat: stat(m.zstd!.map(mbps)) },
    ratio('zstdSerial', 'plain `zstd -q -t` one file after another / baseline', undefined, 'the old baseline'),
    ratio('zstdLargest', 'parallel `zstd -q -t`, largest first / baseline', undefined, 'what the order alone is worth'),
    ratio('floor', 'parallel `zstd -d | cat >/dev/null`, largest first / baseline', undefined, 'the least any check that feeds vma through a pipe can cost'),
    { scenario: S, metric: 'verify:backups --vmid 901, end to end (tsx, as `npm run`): wall', unit: 'ms', stat: stat(m.tool!) },
    ratio('tool', 'ratio verify:backups end to end (tsx) / baseline', 0.8),
    { scenario: S, metric: 'verify:backups --vmid 901, end to end (the single-file bundle): wall', unit: 'ms', stat: stat(m.bundle!) },
    ratio('bundle', 'ratio verify:backups end to end (bundle) / baseline', 0.8),
    ratio('script', 'ratio, its node script alone (same ssh, same input) / baseline', 0.9, "with the lab's vma: a Node.js simulator, ~40 ms start-up and JS per file"),
    ratio('stub', 'ratio, node script with `vma` a stand-in that only reads stdin / baseline', 0.9, 'what a C vma verify costs, roughly'),
    { scenario: S, metric: "process time of the simulator's vma (sum over files, calls.log ms)", unit: 'ms', stat: stat(m.vma!), note: 'Node.js' },
    { scenario: S, metric: 'SSH connections to the node (sshd.log)', unit: 'connections', stat: stat(m.conns!), goal: '1', met: stat(m.conns!).max <= 1 },
    { scenario: S, metric: "SSH commands (the report's sshCommands)", unit: 'commands', stat: stat(m.ssh!) },
    { scenario: S, metric: 'peak RSS (verify:backups)', unit: 'MiB', stat: stat(m.rss!) },
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
    execFileSync('npm', ['run', '-s', 'bundle'], { cwd: ROOT, stdio: 'pipe' })
    // --quick: small archives, so CI's one pass stays short
    const mixed = quick ? [16, 24] : [50, 70, 90, 110, 130, 150, 175, 200]
    const skewed = quick ? [48, 4, 4, 4, 4] : [1024, ...Array.from({ length: 16 }, () => 16)]
    return [
      ...(await throughput(iterations, mixed, `${mixed.length} × ${mixed[0]}–${mixed.at(-1)} MiB`)),
      ...(await throughput(iterations, skewed, `one ${skewed[0]} MiB + ${skewed.length - 1} × ${skewed[1]} MiB`)),
      ...(await metadata(iterations, quick)),
    ]
  } finally {
    rmSync(env.HDR_REPORTS_DIR!, { recursive: true, force: true })
  }
}
