// The lab's Proxmox VE node "pve": a real OpenSSH sshd on 127.0.0.2:2222 whose login PATH puts the
// simulator (pve-sim/bin) first. up() is idempotent, reset() restores the seeded fixture in well
// under a second (archives come from a cache), down() stops sshd, guest netns and the bridge.
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { ensureSeed, SIM_BIN, SIM_DIR } from './seed.ts'

export const NODE_HOST = '127.0.0.2'
export const NODE_PORT = 2222
export const NODE_USER = 'root'

const p = (labDir: string) => ({
  ssh: path.join(labDir, 'ssh'),
  key: path.join(labDir, 'ssh', 'id_ed25519'),
  config: path.join(labDir, 'ssh', 'config'),
  node: path.join(labDir, 'node'),
  home: path.join(labDir, 'node', 'home'),
  sshdConfig: path.join(labDir, 'node', 'sshd_config'),
  pid: path.join(labDir, 'node', 'sshd.pid'),
  pve: path.join(labDir, 'pve'),
})

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`)
  return r.stdout
}
const alive = (pid: number) => { try { process.kill(pid, 0); return true } catch { return false } }
function sshdPid(labDir: string): number | null {
  try { const n = Number(fs.readFileSync(p(labDir).pid, 'utf8').trim()); return n && alive(n) ? n : null } catch { return null }
}

/** Environment of every login on the node (also used by tests that run the simulator directly). */
export function nodeEnv(labDir: string): Record<string, string> {
  return {
    HOME: p(labDir).home,
    PATH: `${SIM_BIN}:${path.dirname(process.execPath)}:/usr/sbin:/usr/bin:/sbin:/bin`,
    HDR_LAB_DIR: labDir,
    HDR_SIM_VMA_TIMEOUT: '2',
    HDR_SIM_RESOURCES_LAG: '1',
    LANG: 'C.UTF-8',
  }
}

/** `ssh -F <labDir>/ssh/config pve …` argv prefix. */
export const sshArgs = (labDir: string) => ['-F', p(labDir).config]

export async function up(labDir: string): Promise<void> {
  const P = p(labDir)
  for (const d of [P.ssh, P.node, P.home, P.pve, '/run/sshd']) fs.mkdirSync(d, { recursive: true })
  if (!fs.existsSync(P.key)) sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'hdr-lab', '-f', P.key])
  for (const k of ['ssh_host_ed25519_key', 'guest_host_ed25519_key']) {
    const f = path.join(P.node, k)
    if (!fs.existsSync(f)) sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', k, '-f', f])
  }
  fs.writeFileSync(P.config, [
    'Host pve',
    `  HostName ${NODE_HOST}`,
    `  Port ${NODE_PORT}`,
    `  User ${NODE_USER}`,
    'Host 10.251.0.*',
    '  User root',
    'Host *',
    `  IdentityFile ${P.key}`,
    '  IdentitiesOnly yes',
    `  UserKnownHostsFile ${path.join(P.ssh, 'known_hosts')}`,
    '  StrictHostKeyChecking accept-new',
    '  BatchMode yes',
    '  ConnectTimeout 5',
    '  LogLevel ERROR',
    '',
  ].join('\n'))
  // the node's own HOME: root's .bashrc would rewrite PATH and cost ~70 ms per command
  fs.writeFileSync(path.join(P.home, '.bashrc'), `# hdr-lab node: keep the simulator first on PATH\nexport PATH=${nodeEnv(labDir).PATH}\n`)
  const env = nodeEnv(labDir)
  fs.writeFileSync(P.sshdConfig, [
    `ListenAddress ${NODE_HOST}:${NODE_PORT}`,
    `HostKey ${path.join(P.node, 'ssh_host_ed25519_key')}`,
    `PidFile ${P.pid}`,
    `AuthorizedKeysFile ${P.key}.pub`,
    'PermitRootLogin prohibit-password',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    'StrictModes no',
    'PermitUserRC no',
    'PrintMotd no',
    'PrintLastLog no',
    'LogLevel VERBOSE',
    'MaxSessions 50',
    'MaxStartups 100:30:200',
    `SetEnv ${Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ')}`,
    'Subsystem sftp internal-sftp',
    '',
  ].join('\n'))
  if (!fs.existsSync(path.join(P.pve, 'storage.json'))) await reset(labDir)
  if (!sshdPid(labDir)) {
    sh('/usr/sbin/sshd', ['-f', P.sshdConfig, '-E', path.join(P.node, 'sshd.log')])
    for (let i = 0; i < 50 && !sshdPid(labDir); i++) await new Promise((r) => setTimeout(r, 20))
    if (!sshdPid(labDir)) throw new Error(`lab sshd did not start; see ${path.join(P.node, 'sshd.log')}`)
  }
}

export async function down(labDir: string): Promise<void> {
  const pid = sshdPid(labDir)
  if (pid) { process.kill(pid, 'SIGTERM'); for (let i = 0; i < 50 && alive(pid); i++) await new Promise((r) => setTimeout(r, 20)) }
  spawnSync(process.execPath, [path.join(SIM_DIR, 'lib', 'lab-reset.mjs'), '--down-only'], { env: { ...process.env, ...nodeEnv(labDir) } })
  if (fs.existsSync('/sys/class/net/hdrbr0')) spawnSync('ip', ['link', 'del', 'hdrbr0'])
}

/** Put guests, storages and backups back to the fixture; restart the running guests' netns. */
export async function reset(labDir: string): Promise<void> {
  const seed = ensureSeed(labDir)
  const P = p(labDir)
  // move the old tree aside first (atomic), so a command still running on the node cannot break the copy
  const old = `${P.pve}.old-${process.pid}-${Date.now()}`
  try { fs.renameSync(P.pve, old) } catch {}
  fs.cpSync(seed, P.pve, { recursive: true })
  fs.rmSync(old, { recursive: true, force: true })
  const r = spawnSync(process.execPath, [path.join(SIM_DIR, 'lib', 'lab-reset.mjs')], { env: { ...process.env, ...nodeEnv(labDir) }, encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`lab reset failed: ${r.stderr}`)
}

/**
 * The lab is one node with fixed addresses: test files that change it must not run at the same
 * time. lock() waits (up to timeoutMs) for $labDir/lab.lock, takes it, and frees it at exit.
 */
export async function lock(labDir: string, timeoutMs = 300_000): Promise<void> {
  const dir = path.join(labDir, 'lab.lock')
  fs.mkdirSync(labDir, { recursive: true })
  // A parent (the test runner, the benchmark) that holds the lock passes it on to its children.
  // Reentrant: this process, or the parent that passed it on, already holds it.
  const heldBy = process.env.HDR_LAB_LOCKED_BY
  try {
    const holder = fs.readFileSync(path.join(dir, 'pid'), 'utf8')
    if (holder === String(process.pid) || (heldBy && holder === heldBy)) return
  } catch {}
  for (const t0 = Date.now(); ; await new Promise((r) => setTimeout(r, 100))) {
    try {
      fs.mkdirSync(dir)
      fs.writeFileSync(path.join(dir, 'pid'), String(process.pid))
      process.once('exit', () => { try { if (fs.readFileSync(path.join(dir, 'pid'), 'utf8') === String(process.pid)) fs.rmSync(dir, { recursive: true, force: true }) } catch {} })
      return
    } catch {
      let holder = 0
      try { holder = Number(fs.readFileSync(path.join(dir, 'pid'), 'utf8')) } catch {}
      if (holder && !alive(holder)) { fs.rmSync(dir, { recursive: true, force: true }); continue }
      if (Date.now() - t0 > timeoutMs) throw new Error(`lab is busy: ${dir} held by pid ${holder}`)
    }
  }
}

/** Change a storage of the node (total/avail in bytes, active 0/1, error text) — e.g. for EC-2. */
export function setStorage(labDir: string, id: string, patch: Record<string, unknown>): void {
  const file = path.join(p(labDir).pve, 'storage.json')
  const all = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, Record<string, unknown>>
  all[id] = { ...(all[id] ?? {}), ...patch }
  fs.writeFileSync(file, JSON.stringify(all, null, 1) + '\n')
}

/**
 * Cut a VMA backup in the node's dump folder after its first `keep` extents and compress it again
 * into a whole stream: the archive that `vma verify` passes (its header and every extent it holds
 * are sound) and that qmrestore fails on at the end, with `detected missing cluster N for stream D`.
 * Returns the first missing cluster and its device.
 */
export async function cutVmaAtExtent(labDir: string, file: string, keep = 1): Promise<{ device: string; cluster: number; missing: number; total: number }> {
  const { archiveInfo, compressor, filter, readArchive } = await import('./pve-sim/lib/archive.mjs')
  const { readVmaHeader, EXTENT_HEADER_SIZE, BLOCK_SIZE, BLOCKS_PER_EXTENT, CLUSTER_SIZE } = await import('./pve-sim/lib/vma.mjs')
  const full = path.join(p(labDir).pve, 'var/lib/vz/dump', file)
  const info = archiveInfo(file)
  if (!info || info.kind !== 'vma') throw new Error(`cutVmaAtExtent: ${file} is not a VMA backup`)
  const raw = readArchive(full, info.comp)
  if (raw.status !== 0) throw new Error(`cutVmaAtExtent: cannot read ${file}: ${raw.stderr}`)
  const data: Buffer = raw.data
  const header = readVmaHeader(data)
  const seen = new Map<number, Set<number>>()
  let at = header.headerSize
  for (let n = 0; n < keep && at < data.length; n++) {
    for (let i = 0; i < BLOCKS_PER_EXTENT; i++) {
      const bi = data.readBigUInt64BE(at + 40 + 8 * i)
      const dev = Number((bi >> 32n) & 0xffn)
      if (dev) { if (!seen.has(dev)) seen.set(dev, new Set()); seen.get(dev)!.add(Number(bi & 0xffffffffn)) }
    }
    at += EXTENT_HEADER_SIZE + data.readUInt16BE(at + 6) * BLOCK_SIZE
  }
  if (at >= data.length) throw new Error(`cutVmaAtExtent: ${file} has no more than ${keep} extents`)
  const dev = header.devices.find((d: { id: number; name: string; size: number }) => d.name !== 'vmstate' && (seen.get(d.id)?.size ?? 0) < Math.ceil(d.size / CLUSTER_SIZE))!
  const total = Math.ceil(dev.size / CLUSTER_SIZE)
  let cluster = 0
  while (seen.get(dev.id)?.has(cluster)) cluster++
  const cut = data.subarray(0, at)
  const comp = info.comp ? ({ gz: 'gzip', lzo: 'lzo', zst: 'zstd' } as Record<string, string>)[info.comp] : undefined
  const c = comp ? compressor(comp) : null
  fs.writeFileSync(full, c ? filter(c.cmd, cut).data : cut)
  return { device: dev.name, cluster, missing: total - (seen.get(dev.id)?.size ?? 0), total }
}

/**
 * Make the node fail at one point (pve-sim/lib/faults.mjs), until the next reset:
 * `{ qmrestore: 'ssh-lost' }` — the SSH session running qmrestore dies once the archive header is read.
 */
export function setFault(labDir: string, faults: Record<string, string>): void {
  fs.writeFileSync(path.join(p(labDir).pve, 'faults.json'), JSON.stringify(faults) + '\n')
}

/** The node's calls.log as parsed lines. */
export function calls(labDir: string): { t: string; argv: string[]; cwd: string; exit: number; ms: number; work_ms: number }[] {
  try {
    return fs.readFileSync(path.join(p(labDir).pve, 'calls.log'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l))
  } catch { return [] }
}

// `node --import tsx test/lab/node.ts up|down|reset [labDir]`
if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  const [cmd, dir] = process.argv.slice(2)
  const lab = dir ?? process.env.HDR_LAB_DIR ?? '/tmp/hdr-lab'
  const fn = cmd === 'up' ? up : cmd === 'down' ? down : cmd === 'reset' ? reset : null
  if (!fn) { console.error('usage: node --import tsx test/lab/node.ts up|down|reset [labDir]'); process.exitCode = 2 }
  else fn(lab).then(() => console.log(`lab node ${cmd}: ${lab}`), (e: unknown) => { console.error(e); process.exitCode = 1 })
}
