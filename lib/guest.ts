// A guest being restored: what holds an ID on the node now, what a backup will bring back (its disks,
// address, agent), the archive's integrity probe, and the proof that a started guest is alive.
// Reads only; the restore's writes are argvs built by lib/guest-restore.ts and sent through Ssh.
import { DrError } from './errors.ts'
import { exec } from './exec.ts'
import { guestAddress, guestDisks, kindWord, lastLine, parseGuestConfig, tool, type GuestConfig, type Pve, type Read } from './pve.ts'
import { Ssh, type RemoteResult } from './ssh.ts'
import { DEFINE_CLUSTER_READER, MISSING_CLUSTERS_EXIT, MISSING_CONFIG_EXIT, missingClustersMessage, parseMissingClusters, withoutClusterLines } from './vma.ts'
import type { Backup, GuestType } from './backups.ts'
import type { Config } from './config.ts'

/** What holds a VMID on the node right now. */
export interface Occupant {
  vmid: number
  type: GuestType
  /** running | stopped | … from `qm status`/`pct status` (not the lagging /cluster/resources). */
  status: string
  config: GuestConfig
}

export const guestName = (conf: GuestConfig | undefined): string | undefined => conf?.name ?? conf?.hostname
/** `VM 101 (web01)` */
export const label = (type: GuestType, vmid: number, conf?: GuestConfig) => `${kindWord(type)} ${vmid}${guestName(conf) ? ` (${guestName(conf)})` : ''}`

/** `agent: 1` or `agent: enabled=1,…` (qemu-server's agent property string). */
export function agentEnabled(conf: GuestConfig): boolean {
  const v = conf.agent ?? ''
  return /^(1|enabled=1)(,|$)/.test(v) || /(^|,)enabled=1(,|$)/.test(v)
}

export const isProtected = (conf: GuestConfig) => /^(1|true|yes|on)$/i.test(conf.protection ?? '')

/**
 * What holds a VMID — VM, CT or nothing — with its config and current status, in one round trip:
 * `qm config`, else `pct config`, then that tool's `status`. A fixed script; $1 = VMID.
 */
export async function readOccupant(pve: Pve, vmid: number): Promise<Occupant | undefined> {
  return pve.read(occupantRead(pve, vmid))
}

/** readOccupant as a Read, to share a round trip with other reads (Pve.together). */
export function occupantRead(pve: Pve, vmid: number): Read<Occupant | undefined> {
  const script = [
    'for t in qm pct; do',
    '  if out=$("$t" config "$1" 2>&1); then',
    `    printf 'type=%s\\n%s\\n\\036\\n' "$t" "$out"; exec "$t" status "$1"`,
    '  fi',
    '  case "$out" in *"does not exist"*) ;; *) printf "%s\\n" "$out" >&2; exit 1 ;; esac',
    'done',
    'echo type=none',
  ].join('\n')
  return {
    argv: ['bash', '-c', script, 'hdr', String(vmid)],
    answer: async (r) => {
      const t = /^type=(\w+)$/m.exec(r.stdout)?.[1]
      if (t === 'none') return undefined
      if (r.exitCode !== 0 || (t !== 'qm' && t !== 'pct')) throw new DrError('failed', `Cannot read guest ${vmid} on node '${pve.node}': ${lastLine(r.stderr || r.stdout)}`)
      const cut = r.stdout.indexOf('\n\x1e\n')
      const config = parseGuestConfig(r.stdout.slice(r.stdout.indexOf('\n') + 1, cut))
      const status = /^status: (\S+)/m.exec(r.stdout.slice(cut))?.[1]
      if (!status) throw new DrError('failed', `\`${t} status ${vmid}\` failed on node '${pve.node}': ${lastLine(r.stderr)}`)
      return { vmid, type: t === 'qm' ? 'qemu' : 'lxc', status, config }
    },
  }
}

// ---- the archive ----

/** Compression-tool argv per vzdump compression (pve-storage decompressor_info). */
const DECOMPRESS: Record<string, string[]> = { gz: ['zcat'], lzo: ['lzop', '-d', '-c'], zst: ['zstd', '-q', '-d', '-c'], bz2: ['bzcat', '-q'] }
const TEST: Record<string, string[]> = { gz: ['gzip', '-t'], lzo: ['lzop', '-t'], zst: ['zstd', '-q', '-t'], bz2: ['bzip2', '-t'] }

/** What the probe runs on the node, for the plan and the report. */
export function probeDescription(b: Pick<Backup, 'format' | 'compression'>): string {
  const c = b.compression
  if (b.format.startsWith('vma')) return `${c ? (DECOMPRESS[c] ?? []).join(' ') : 'cat'} FILE | vma verify -, every cluster counted`
  return c ? `${(TEST[c] ?? []).join(' ')} FILE` : 'tar -tf FILE'
}

/**
 * Bash lines that read the VMA at $p through "$@" (its decompressor) into the cluster reader, which
 * writes the header's configuration to fd 3, and `vma verify -` (its messages to stderr). $rc is vma's
 * verdict first, then the decompressor's, then the reader's (a broken stream also lacks clusters).
 */
const READ_VMA = [
  DEFINE_CLUSTER_READER,
  '"$@" "$p" | perl -e "$pl" config | vma verify - >&2; s=("${PIPESTATUS[@]}")',
  'if ((s[2])); then rc=${s[2]}; elif ((s[0])); then rc=${s[0]}; else rc=${s[1]}; fi',
]

/**
 * EC-4, in one round trip: the configuration inside the backup, then the whole archive once: the
 * compression stream (its frames and checksums) and, for a VMA, the header MD5 and every extent (`vma
 * verify`) and every device's clusters (lib/vma.ts: `vma verify` passes an archive cut at an extent
 * boundary). A VMA's configuration is read from its header by the same pass (the cluster reader, fd
 * 3), a tar's by `pvesm extractconfig` (issue 14: each pvesm is a Perl start-up on a real node).
 * A configuration alone passes a truncated archive, and a damaged VMA header only fails qmrestore
 * after 60 s — after the old guest's disks are gone. Returns the file's path and the guest config;
 * throws a sentence naming the file.
 */
export async function probeArchive(pve: Pve, b: Backup): Promise<{ path: string; config: GuestConfig }> {
  if (b.size <= 0) throw corrupt(b, 'the file is empty (0 bytes)')
  const argv = probeArgv(b)
  const script = [
    'p=$(pvesm path "$1") || exit 90',
    `printf 'path=%s\\n' "$p"`,
    'volid=$1 kind=$2; shift 2',
    `if [ "$kind" != vma ]; then pvesm extractconfig "$volid" || exit 91; printf '\\n\\036\\n'; exec "$@" "$p" >/dev/null; fi`,
    'exec 3>&1', // the configuration on stdout, every tool's messages on stderr
    ...READ_VMA,
    `printf '\\n\\036\\n'`,
    'exit "$rc"',
  ].join('\n')
  const r = await pve.ssh.runScript(script, [b.volid, ...argv], { timeoutMs: 4 * 3600_000 })
  const path = located(pve, b, r)
  const cut = r.stdout.indexOf('\n\x1e\n')
  if (r.exitCode === 91 || r.exitCode === MISSING_CONFIG_EXIT || cut < 0) throw corrupt(b, `its configuration cannot be read (${lastLine(r.stderr || r.stdout).replace(/^vma-config: /, '')})`)
  const config = parseGuestConfig(r.stdout.slice(r.stdout.indexOf('\n') + 1, cut))
  if (r.exitCode === MISSING_CLUSTERS_EXIT && parseMissingClusters(r.stderr).length) throw corrupt(b, missingClustersMessage(parseMissingClusters(r.stderr)))
  if (r.exitCode !== 0) {
    // vma's own error, or the decompressor's: the last line that is not the reader's
    throw corrupt(b, lastLine([withoutClusterLines(r.stderr), r.stdout.slice(cut + 3)].filter((s) => s.trim()).join('\n')))
  }
  return { path, config }
}

/**
 * The preflight's archive read when the caller has just read this archive end to end itself
 * (verify:backups' file check, before its test restores): its path and configuration only — for a
 * VMA the cluster reader's `config header` mode (the header's qemu-server.conf, then it stops), for a
 * tar `pvesm extractconfig` (its first entries) — not the whole archive a second time (on a 50 GB
 * backup, minutes). Same answer and errors as probeArchive.
 */
export async function readArchiveConfig(pve: Pve, b: Backup): Promise<{ path: string; config: GuestConfig }> {
  const vma = b.format.startsWith('vma')
  const script = [
    'p=$(pvesm path "$1") || exit 90',
    `printf 'path=%s\n' "$p"`,
    ...(vma
      // the cluster reader stops after the header: the decompressor's broken pipe is expected
      ? [DEFINE_CLUSTER_READER, 'shift', '"$@" "$p" 2>/dev/null | perl -e "$pl" config header 3>&1 >/dev/null; s=("${PIPESTATUS[@]}"); exit "${s[1]}"']
      : ['pvesm extractconfig "$1" || exit 91']),
  ].join('\n')
  const c = b.compression
  const r = await pve.ssh.runScript(script, [b.volid, ...(vma ? (c ? DECOMPRESS[c] ?? ['cat'] : ['cat']) : [])], { timeoutMs: 600_000 })
  const path = located(pve, b, r)
  const config = r.stdout.slice(r.stdout.indexOf('\n') + 1)
  if (r.exitCode !== 0 || !config.trim()) throw corrupt(b, `its configuration cannot be read (${lastLine(r.stderr || r.stdout).replace(/^vma-config: /, '')})`)
  return { path, config: parseGuestConfig(config) }
}

/** The `path=` line of a probe's answer (its script exits 90 when `pvesm path` fails). */
function located(pve: Pve, b: Backup, r: RemoteResult): string {
  const path = /^path=(\/.*)$/m.exec(r.stdout)?.[1]
  if (r.exitCode === 90 || !path) throw new DrError('prerequisites', `Cannot locate ${b.volid} on node '${pve.node}': ${lastLine(r.stderr || r.stdout)}. Nothing was changed.`)
  return path
}

/** The probe's kind and command for a backup: `vma zstd -q -d -c` (piped into vma verify) or `tar zstd -q -t`. */
function probeArgv(b: Pick<Backup, 'format' | 'compression'>): string[] {
  const c = b.compression
  return b.format.startsWith('vma') ? ['vma', ...(c ? DECOMPRESS[c] ?? ['cat'] : ['cat'])] : ['tar', ...(c ? TEST[c] ?? ['tar', '-tf'] : ['tar', '-tf'])]
}

/**
 * Just before anything is overwritten (issue 12), in one round trip: the chosen backup is still on
 * its storage (a prune or a person may have removed it since the preflight), and the safety backup
 * just written is whole (its configuration readable, the archive read end to end as in probeArchive).
 * Neither path is asked of `pvesm path` again (issue 14: each pvesm is a Perl start-up on a real node):
 * the chosen backup's is the one the preflight's `pvesm path` gave (probeArchive), the safety
 * backup's the one vzdump itself printed (`creating vzdump archive '…'`); without it, `pvesm path`.
 * Throws a sentence naming what is wrong; the caller has changed nothing yet but the new safety file.
 */
export async function verifyBeforeOverwrite(pve: Pve, chosen: Backup, chosenPath: string, safety: Pick<Backup, 'volid' | 'file' | 'format' | 'compression'> & { path?: string }): Promise<void> {
  if (!chosenPath.startsWith('/')) throw new Error(`verifyBeforeOverwrite: no path for ${chosen.volid}`) // a bug, not the node's answer
  const script = [
    '[ -f "$1" ] || { printf "%s: no such file\\n" "$1"; exit 92; }',
    'p=$2; [ -n "$p" ] || p=$(pvesm path "$3") || exit 90',
    '[ -s "$p" ] || { echo "the file is empty"; exit 93; }',
    'volid=$3 kind=$4; shift 4',
    `if [ "$kind" != vma ]; then pvesm extractconfig "$volid" >/dev/null || exit 91; exec "$@" "$p" >/dev/null; fi`,
    'exec 3>/dev/null', // the configuration is only required to be there
    ...READ_VMA,
    'exit "$rc"',
  ].join('\n')
  const r = await pve.ssh.runScript(script, [chosenPath, safety.path ?? '', safety.volid, ...probeArgv(safety)], { timeoutMs: 4 * 3600_000 })
  if (r.exitCode === 0) return
  if (r.exitCode === 92) throw new DrError('failed', `Backup ${chosen.file} is no longer on storage '${chosen.storage}' (removed since it was checked: a prune, or by hand), so nothing was restored.`)
  const missing = r.exitCode === MISSING_CLUSTERS_EXIT ? parseMissingClusters(r.stderr) : []
  const why = missing.length ? missingClustersMessage(missing) : lastLine(r.stderr || r.stdout).replace(/^vma-config: /, '')
  throw new DrError('failed', `The safety backup ${safety.file} just written is not whole (${why}), so nothing was restored: it could not put the guest back.`)
}

function corrupt(b: Backup, why: string): DrError {
  return new DrError('prerequisites', `Backup ${b.file} failed its integrity check: ${why}.`)
}

// ---- disks and space ----

/** Bytes each storage must receive for the guest's disks (as recorded in the backup). */
export function spaceNeeded(backupConf: GuestConfig, storageOverride?: string): Map<string, number> {
  const need = new Map<string, number>()
  for (const d of guestDisks(backupConf)) {
    const s = storageOverride ?? d.storage
    need.set(s, (need.get(s) ?? 0) + d.bytes)
  }
  return need
}

/** Bytes freed on each storage when an existing guest's disks are replaced by the restore. */
export function spaceFreed(current: GuestConfig | undefined): Map<string, number> {
  const freed = new Map<string, number>()
  for (const d of guestDisks(current ?? {})) freed.set(d.storage, (freed.get(d.storage) ?? 0) + d.bytes)
  return freed
}

// ---- reaching the guest ----

export interface GuestAccess {
  address: string | undefined
  /** Where the address came from: the backup's config or the tfvars. */
  source: string
  user: string
  port: number
}

/**
 * The guest's address (static `ipconfig0`/`net0` in the backup, else tfvars `guest_addresses`
 * keyed by VMID or name) and SSH login (tfvars `guest_ssh_user`, `guest_ssh_port`; root and 22).
 */
export function guestAccess(cfg: Config, vmid: number, conf: GuestConfig): GuestAccess {
  const raw = (k: string) => cfg.vars.get(k)?.value
  const user = typeof raw('guest_ssh_user') === 'string' ? (raw('guest_ssh_user') as string) : 'root'
  const portRaw = raw('guest_ssh_port')
  const port = typeof portRaw === 'number' ? portRaw : typeof portRaw === 'string' && /^\d+$/.test(portRaw) ? Number(portRaw) : 22
  const fromConf = guestAddress(conf)
  if (fromConf) return { address: fromConf, source: conf.ipconfig0 ? 'ipconfig0' : 'net0', user, port }
  const map = raw('guest_addresses')
  if (map && typeof map === 'object' && !Array.isArray(map)) {
    const m = map as Record<string, unknown>
    const name = guestName(conf)
    const v = m[String(vmid)] ?? (name ? m[name] : undefined)
    if (typeof v === 'string' && /^[A-Za-z0-9][A-Za-z0-9.:-]*$/.test(v)) return { address: v, source: `guest_addresses in ${cfg.vars.get('guest_addresses')?.file}`, user, port }
  }
  return { address: undefined, source: 'none', user, port }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** ICMP ping from the operator's machine, retried while the guest boots. Returns attempts used. */
export async function waitForPing(address: string, deadlineMs: number): Promise<number> {
  const end = Date.now() + deadlineMs
  for (let attempt = 1; ; attempt++) {
    const r = await exec('ping', ['-c', '1', '-W', '2', address], { timeoutMs: 5_000 })
    if (r.exitCode === 0) return attempt
    if (Date.now() >= end) throw new DrError('verification', `${address} does not answer ping (${attempt} attempts over ${Math.round(deadlineMs / 1000)} s).`)
    await sleep(1_000)
  }
}

/** An SSH login to the guest (the operator's ssh, BatchMode), retried while sshd starts. Returns its hostname. */
export async function waitForSsh(access: GuestAccess & { address: string }, name: string, deadlineMs: number): Promise<string> {
  const end = Date.now() + deadlineMs
  let last = ''
  for (let attempt = 1; ; attempt++) {
    const ssh = new Ssh({ name, host: access.address, port: access.port, user: access.user }, { multiplex: false })
    try {
      return await ssh.connect()
    } catch (e) {
      last = e instanceof Error ? (/over SSH \([^)]*\): (.*)$/.exec(e.message.replace(/\.$/, ''))?.[1] ?? e.message) : String(e)
    } finally {
      await ssh.close()
    }
    if (Date.now() >= end) throw new DrError('verification', `No SSH login to ${access.user}@${access.address}:${access.port} (${attempt} attempt${attempt > 1 ? 's' : ''}): ${last}.`)
    await sleep(1_500)
  }
}

/**
 * Post-start proof on the node, in one round trip. With a guest agent (qemu), its ping first: qemu-server
 * asks in order whether an agent is configured, whether the VM runs, whether the agent answers
 * (Agent.pm assert_agent_available), so "ok" and "QEMU guest agent is not running" both say the VM
 * runs, and `qm status` is asked only when the agent's answer does not tell (issue 14: one Perl
 * start-up fewer on a real node). Otherwise `qm status`/`pct status`. The caller retries the agent
 * while the guest boots.
 */
export async function verifyOnNode(pve: Pve, type: GuestType, vmid: number, agent: boolean): Promise<{ status: string; agent: string; statusFrom: 'status' | 'agent' }> {
  const script = [
    'if [ "$3" = 1 ]; then',
    '  out=$(qm guest cmd "$2" ping 2>&1) && a=ok || a=${out##*$\'\\n\'}',
    '  printf "agent=%s\\n" "$a"',
    '  case "$a" in ok|"QEMU guest agent is not running") echo "status: running (agent)"; exit 0 ;; esac',
    'fi',
    's=$("$1" status "$2") || { printf "%s\\n" "$s"; exit 1; }',
    'printf "%s\\n" "$s"',
  ].join('\n')
  const r = await pve.ssh.runScript(script, [tool(type), String(vmid), agent ? '1' : '0'])
  const status = /^status: (\S+)/m.exec(r.stdout)?.[1] ?? `unknown (${lastLine(r.stderr || r.stdout)})`
  return {
    status,
    agent: agent ? (/^agent=(.*)$/m.exec(r.stdout)?.[1] ?? 'no answer') : 'none',
    statusFrom: /^status: \S+ \(agent\)$/m.test(r.stdout) ? 'agent' : 'status',
  }
}

/**
 * `qm guest cmd N ping`, retried from here while the agent starts, at most once a second: `since` is
 * when it was last asked (verifyOnNode's ping), so the first try here waits out the rest of that
 * second. Returns 'ok' or the last error.
 */
export async function waitForAgent(pve: Pve, vmid: number, deadlineMs: number, since?: number): Promise<string> {
  const end = Date.now() + deadlineMs
  if (since !== undefined) await sleep(Math.max(0, since + 1_000 - Date.now()))
  for (;;) {
    const r = await pve.ssh.run(['qm', 'guest', 'cmd', String(vmid), 'ping'], { timeoutMs: 30_000 })
    if (r.exitCode === 0) return 'ok'
    if (Date.now() >= end) return lastLine(r.stderr || r.stdout)
    await sleep(1_000)
  }
}

