// The MinIO that holds the Terraform states: what is wrong with it (a read-only diagnosis that
// rebuild:minio, dr and dr:check share), the buckets it must serve, the container's parameters for a
// rebuild from zero, installing MinIO in a fresh container, pushing local states back, and proving
// that every environment reconnects. Node commands go through Ssh as argvs; S3 through lib/s3.ts.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import type { Config, Environment, MinioConfig } from './config.ts'
import { DrError } from './errors.ts'
import { lastLine, parseGuestConfig, type GuestConfig, type Pve } from './pve.ts'
import { bucketVersioning, classify, exists, getText, listBuckets, putText, type S3, type S3FailureKind } from './s3.ts'
import { localCopies, stateKey, tryParseState, type TfState } from './state.ts'
import { init, lastLines, terraform, type TfCredentials } from './terraform.ts'

// ---- what it serves -------------------------------------------------------------------------------

/**
 * Environments whose S3 backend is this MinIO: no endpoint given, or one at minio_ip:minio_port, or the
 * MinIO endpoint itself when it is on minio_port (a name instead of the IP). Another S3 is not ours.
 */
export function environmentsOnMinio(cfg: Config, minio: MinioConfig): Environment[] {
  const ours = (url: string) => {
    const u = hostPort(url)
    return u === `${minio.ip}:${minio.port}`.toLowerCase() || (u === hostPort(minio.endpoint) && u.endsWith(`:${minio.port}`))
  }
  return cfg.environments.filter((e) => e.backend?.type === 's3' && e.bucket && e.key && (!e.endpoint || ours(e.endpoint)))
}

/** The URL to reach MinIO: the backends' endpoint when it is on minio_port, else http://minio_ip:minio_port. */
export function minioEndpoint(minio: MinioConfig): string {
  return hostPort(minio.endpoint).endsWith(`:${minio.port}`) ? minio.endpoint : `http://${minio.ip}:${minio.port}`
}

function hostPort(url: string): string {
  try {
    const u = new URL(url)
    return `${u.hostname}:${u.port || (u.protocol === 'https:' ? '443' : '80')}`.toLowerCase()
  } catch {
    return url.toLowerCase()
  }
}

/** Every bucket the homelab needs: minio_buckets and each environment's backend bucket, with why. */
export function wantedBuckets(cfg: Config, minio: MinioConfig): Array<{ name: string; why: string[] }> {
  const out = new Map<string, string[]>()
  for (const b of minio.buckets) out.set(b, ['minio_buckets'])
  for (const e of environmentsOnMinio(cfg, minio)) out.set(e.bucket!, [...(out.get(e.bucket!) ?? []), `backend of ${e.name}`])
  return [...out].map(([name, why]) => ({ name, why }))
}

// ---- the diagnosis ----------------------------------------------------------------------------------

export type Versioning = 'Enabled' | 'Suspended' | 'Off'

export interface MinioDiagnosis {
  /** undefined when MinIO is not a Proxmox container here (no minio_ctid) or the node was not asked. */
  container: { ctid: number; state: 'missing' | 'running' | 'stopped' | string; hostname?: string } | undefined
  endpoint: string
  s3: 'up' | S3FailureKind
  /** Why S3 did not answer, in one sentence (never the secret). */
  s3Error?: string
  buckets: Array<{ name: string; exists: boolean; versioning?: Versioning }>
  /** Each environment's state object, and the newest local copy that could be pushed back. */
  states: Array<{ env: string; bucket: string; key: string; exists: boolean; local?: { serial: number; lineage: string; file: string } }>
  /** Healthy: CT running, S3 answers, every bucket versioned, every state that has a local copy present. */
  healthy: boolean
}

/**
 * The read-only diagnosis: the container (present, running) when minio_ctid is set and a node is
 * given, S3 answering with the credentials, which buckets exist, versioning on each, which
 * environments' state objects exist. Changes nothing; never throws for what it finds.
 */
export async function diagnoseMinio(cfg: Config, minio: MinioConfig, io: { pve?: Pve; s3: S3; stateFrom?: string }): Promise<MinioDiagnosis> {
  let container: MinioDiagnosis['container']
  const ctid = minio.ctid as number | undefined // the configuration may make it optional
  if (io.pve && ctid !== undefined) {
    const r = await io.pve.ssh.runScript('c=$(pct config "$1" 2>&1) || { printf "%s\\n" "$c" >&2; exit 3; }; printf "%s\\n\\036\\n" "$c"; pct status "$1"', [String(ctid)])
    if (r.exitCode === 3 && /does not exist/.test(r.stderr)) container = { ctid, state: 'missing' }
    else if (r.exitCode !== 0) throw new DrError('failed', `Cannot read CT ${ctid} on node '${io.pve.node}': ${lastLine(r.stderr || r.stdout)}`)
    else {
      const conf = parseGuestConfig(r.stdout.slice(0, r.stdout.indexOf('\x1e')))
      container = { ctid, state: /^status: (\S+)/m.exec(r.stdout)?.[1] ?? 'unknown', hostname: conf.hostname }
    }
  }
  const wanted = wantedBuckets(cfg, minio)
  const envs = environmentsOnMinio(cfg, minio)
  const d: MinioDiagnosis = { container, endpoint: minioEndpoint(minio), s3: 'up', buckets: [], states: [], healthy: false }
  let present: string[] = []
  try {
    present = await listBuckets(io.s3)
  } catch (e) {
    d.s3 = classify(e)
    d.s3Error = s3Sentence(e, d.s3)
  }
  if (d.s3 === 'up') {
    for (const w of wanted) {
      const has = present.includes(w.name)
      d.buckets.push({ name: w.name, exists: has, ...(has ? { versioning: await bucketVersioning(io.s3, w.name) } : {}) })
    }
    for (const e of envs) {
      const key = stateKey(e.key!, undefined, e.workspaceKeyPrefix)
      const has = present.includes(e.bucket!) ? await exists(io.s3, e.bucket!, key) : false
      const local = newestLocalState(e, io.stateFrom)
      d.states.push({ env: e.name, bucket: e.bucket!, key, exists: has, ...(local ? { local: { serial: local.state.serial, lineage: local.state.lineage, file: local.file } } : {}) })
    }
  }
  d.healthy = (!container || container.state === 'running') && d.s3 === 'up' &&
    d.buckets.every((b) => b.exists && b.versioning === 'Enabled') && d.states.every((s) => s.exists || !s.local)
  return d
}

function s3Sentence(e: unknown, kind: S3FailureKind): string {
  const name = (e as { name?: string })?.name ?? 'Error'
  if (kind === 'unreachable') return 'no answer'
  if (kind === 'credentials') return `the credentials were refused (${name})`
  return `${name}: ${(e as Error)?.message ?? String(e)}`
}

/** The diagnosis as lines for the operator: ok, warning (not a health failure) or failed. */
export function diagnosisLines(d: MinioDiagnosis): Array<[status: 'ok' | 'warning' | 'failed', text: string]> {
  const out: Array<['ok' | 'warning' | 'failed', string]> = []
  const is = (ok: boolean) => (ok ? 'ok' : 'failed') as 'ok' | 'failed'
  const c = d.container
  if (c) out.push([is(c.state === 'running'), c.state === 'missing' ? `CT ${c.ctid}: missing` : `CT ${c.ctid}${c.hostname ? ` (${c.hostname})` : ''}: ${c.state}`])
  out.push([is(d.s3 === 'up'), d.s3 === 'up' ? `S3 answers on ${d.endpoint}` : `S3 on ${d.endpoint}: ${d.s3Error ?? d.s3}`])
  for (const b of d.buckets) out.push([is(b.exists && b.versioning === 'Enabled'), b.exists ? `bucket ${b.name}: versioning ${b.versioning}` : `bucket ${b.name}: missing`])
  for (const s of d.states) {
    const where = `state of ${s.env} (s3://${s.bucket}/${s.key})`
    if (s.exists) out.push(['ok', `${where}: present`])
    else if (s.local) out.push(['failed', `${where}: missing; local copy serial ${s.local.serial}, lineage ${s.local.lineage}`])
    else out.push(['warning', `${where}: missing, and no local copy (never applied, or lost: restore:state fallback explains)`])
  }
  return out
}

// ---- the container's parameters ---------------------------------------------------------------------

export interface CtParams {
  ctid: number
  hostname: string
  ip: string
  cidr: number
  gateway: string | undefined
  bridge: string
  cores: number
  memory: number
  swap: number
  rootfsStorage: string
  rootfsGb: number
  unprivileged: boolean
  /** Where each value came from, for the plan. */
  sources: string[]
}

type Raw = { value: unknown; from: string }

/**
 * The MinIO CT's parameters, each from the first place that declares it: the minio environment's
 * Terraform (a proxmox_lxc or proxmox_virtual_environment_container resource), then the tfvars/.env
 * (minio_hostname, minio_cidr, minio_gateway, minio_bridge, minio_cores, minio_memory, minio_disk_gb),
 * then the container's configuration inside its latest backup, then defaults.
 */
export async function containerParams(cfg: Config, minio: MinioConfig, backupConf: GuestConfig | undefined): Promise<CtParams> {
  const ctid = minio.ctid as number | undefined
  if (ctid === undefined) throw new DrError('prerequisites', 'minio_ctid is not set: MinIO is not a Proxmox container here, so it cannot be recreated.')
  const tf = await terraformDeclared(cfg)
  const varOf = (k: string): Raw | undefined => {
    const env = process.env[`HDR_${k.toUpperCase()}`]
    if (env) return { value: env, from: `HDR_${k.toUpperCase()}` }
    const v = cfg.vars.get(k)
    return v ? { value: v.value, from: v.file } : undefined
  }
  const net = /(?:^|,)ip=([0-9.]+)\/(\d+)/.exec(backupConf?.net0 ?? '')
  const fromBackup = (v: string | undefined): Raw | undefined => (v === undefined || v === '' ? undefined : { value: v, from: 'the backup' })
  const rootfs = /^([^:]+):[^,]*,(?:.*,)?size=(\d+)G/.exec(backupConf?.rootfs ?? '')
  const sources = new Set<string>()
  const pick = (...c: Array<Raw | undefined>): Raw | undefined => {
    const v = c.find((x) => x !== undefined && x.value !== undefined && x.value !== '')
    if (v) sources.add(v.from)
    return v
  }
  const int = (r: Raw | undefined, dflt: number, what: string): number => {
    if (!r) return sources.add('defaults'), dflt
    const n = typeof r.value === 'number' ? r.value : Number(String(r.value).replace(/G$/i, ''))
    if (!Number.isInteger(n) || n <= 0) throw new DrError('prerequisites', `Invalid ${what} ${JSON.stringify(r.value)} in ${r.from}: expected a whole number.`)
    return n
  }
  const str = (r: Raw | undefined, dflt: string | undefined): string | undefined => (r ? String(r.value) : dflt)

  const cidrRaw = pick(tf.cidr, varOf('minio_cidr'), fromBackup(net ? `${net[1]}/${net[2]}` : undefined))
  const cidr = cidrRaw ? /\/(\d+)$/.exec(String(cidrRaw.value))?.[1] : undefined
  const ip = minio.ip
  if (!/^\d+\.\d+\.\d+\.\d+$/.test(ip)) throw new DrError('prerequisites', `minio_ip ${JSON.stringify(ip)} is not an IPv4 address: a container needs one (set minio_ip to the address MinIO had).`)
  const gateway = str(pick(tf.gateway, varOf('minio_gateway'), fromBackup(/(?:^|,)gw=([0-9.]+)/.exec(backupConf?.net0 ?? '')?.[1])), undefined)
  if (gateway !== undefined && !/^\d+\.\d+\.\d+\.\d+$/.test(gateway)) throw new DrError('prerequisites', `Invalid gateway ${JSON.stringify(gateway)} for the MinIO CT.`)
  const hostname = str(pick(tf.hostname, varOf('minio_hostname'), fromBackup(backupConf?.hostname)), 'minio')!
  if (!/^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$/.test(hostname)) throw new DrError('prerequisites', `Invalid hostname ${JSON.stringify(hostname)} for the MinIO CT.`)
  const bridge = str(pick(tf.bridge, varOf('minio_bridge'), fromBackup(/(?:^|,)bridge=([^,]+)/.exec(backupConf?.net0 ?? '')?.[1])), 'vmbr0')!
  const storage = str(pick(tf.storage, varOf('minio_storage'), fromBackup(rootfs?.[1])), cfg.guestStorage ?? 'local-lvm')!
  if (![bridge, storage].every((s) => /^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(s))) throw new DrError('prerequisites', `Invalid bridge or storage name for the MinIO CT: ${bridge}, ${storage}.`)
  return {
    ctid,
    hostname,
    ip,
    cidr: cidr ? Number(cidr) : 24,
    gateway,
    bridge,
    cores: int(pick(tf.cores, varOf('minio_cores'), fromBackup(backupConf?.cores)), 2, 'cores'),
    memory: int(pick(tf.memory, varOf('minio_memory'), fromBackup(backupConf?.memory)), 2048, 'memory'),
    swap: int(pick(varOf('minio_swap'), fromBackup(backupConf?.swap)), 512, 'swap'),
    rootfsStorage: storage,
    rootfsGb: int(pick(tf.disk, varOf('minio_disk_gb'), fromBackup(rootfs?.[2])), 8, 'disk size'),
    unprivileged: backupConf ? backupConf.unprivileged === '1' : true,
    sources: [...sources],
  }
}

/** `pct create` for these parameters and a template volid. */
export function pctCreateArgv(p: CtParams, template: string): string[] {
  const net = `name=eth0,bridge=${p.bridge},ip=${p.ip}/${p.cidr}${p.gateway ? `,gw=${p.gateway}` : ''}`
  return ['pct', 'create', String(p.ctid), template, '--hostname', p.hostname, '--net0', net, '--cores', String(p.cores), '--memory', String(p.memory),
    '--swap', String(p.swap), '--rootfs', `${p.rootfsStorage}:${p.rootfsGb}`, '--unprivileged', p.unprivileged ? '1' : '0', '--onboot', '1']
}

/** The minio environment's Terraform, when it declares the container (telmate proxmox_lxc or bpg). */
async function terraformDeclared(cfg: Config): Promise<Partial<Record<'cidr' | 'gateway' | 'hostname' | 'bridge' | 'storage' | 'cores' | 'memory' | 'disk', Raw>>> {
  const env = cfg.environments.find((e) => e.name === 'minio')
  if (!env) return {}
  const { parse } = await import('@cdktf/hcl2json')
  const out: Partial<Record<string, Raw>> = {}
  const resolve = (v: unknown, file: string): Raw | undefined => {
    if (v === undefined || v === null) return undefined
    const m = typeof v === 'string' ? /^\$\{var\.([A-Za-z0-9_]+)\}$/.exec(v) : null
    if (m) {
      const x = cfg.vars.get(m[1]!)
      return x ? { value: x.value, from: `${file} (var.${m[1]} in ${x.file})` } : undefined
    }
    return typeof v === 'string' && v.includes('${') ? undefined : { value: v, from: file }
  }
  const first = (v: unknown): Record<string, unknown> => ((Array.isArray(v) ? v[0] : v) ?? {}) as Record<string, unknown>
  for (const name of readdirSync(env.dir).filter((n) => n.endsWith('.tf')).sort()) {
    const file = `environments/minio/${name}`
    const doc = (await parse(name, readFileSync(join(env.dir, name), 'utf8'))) as { resource?: Record<string, Record<string, unknown>> }
    for (const body of Object.values(doc.resource?.proxmox_lxc ?? {}).map(first)) {
      const n = first(body.network)
      const ip = resolve(n.ip, file)
      Object.assign(out, { hostname: resolve(body.hostname, file), cores: resolve(body.cores, file), memory: resolve(body.memory, file), bridge: resolve(n.bridge, file), gateway: resolve(n.gw, file), storage: resolve(first(body.rootfs).storage, file), disk: resolve(first(body.rootfs).size, file) })
      if (ip && /\/\d+$/.test(String(ip.value))) out.cidr = ip
    }
    for (const body of Object.values(doc.resource?.proxmox_virtual_environment_container ?? {}).map(first)) {
      const ipv4 = first(first(first(body.initialization).ip_config).ipv4)
      const addr = resolve(ipv4.address, file)
      Object.assign(out, { hostname: resolve(first(body.initialization).hostname, file), cores: resolve(first(body.cpu).cores, file), memory: resolve(first(body.memory).dedicated, file), bridge: resolve(first(body.network_interface).bridge, file), gateway: resolve(ipv4.gateway, file), storage: resolve(first(body.disk).datastore_id, file), disk: resolve(first(body.disk).size, file) })
      if (addr && /\/\d+$/.test(String(addr.value))) out.cidr = addr
    }
  }
  for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k]
  return out
}

/** The minio environment when it is Terraform with a local state: `terraform apply` can recreate the CT. */
export function localStateEnvironment(cfg: Config): { env: Environment; stateFile: string } | undefined {
  const env = cfg.environments.find((e) => e.name === 'minio')
  if (!env || (env.backend && env.backend.type !== 'local')) return undefined
  const path = typeof env.backend?.settings.path === 'string' ? join(env.dir, env.backend.settings.path) : join(env.dir, 'terraform.tfstate')
  return existsSync(path) ? { env, stateFile: path } : undefined
}

// ---- installing MinIO in a fresh container ------------------------------------------------------------

export const MINIO_DEFAULT_URL = 'https://dl.min.io/server/minio/release/linux-amd64/minio'

/**
 * Run inside the new CT by `pct exec CT -- bash -c SCRIPT hdr URL PORT CONSOLE`, the environment file
 * (root user and password) on stdin so that the secret is on no command line: download the binary
 * (kept if present), a system user, the data folder, /etc/default/minio (0600), the systemd unit as
 * MinIO documents it, then `systemctl enable --now minio`.
 */
export const INSTALL_SCRIPT = [
  'set -eu',
  'url=$1; port=$2; console=$3',
  'if [ ! -x /usr/local/bin/minio ]; then',
  '  if command -v curl >/dev/null 2>&1; then curl -fsSL -o /usr/local/bin/minio.part "$url"; else wget -q -O /usr/local/bin/minio.part "$url"; fi',
  '  chmod 0755 /usr/local/bin/minio.part && mv /usr/local/bin/minio.part /usr/local/bin/minio',
  'fi',
  'id minio-user >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin minio-user',
  'mkdir -p /var/lib/minio/data /etc/default /etc/systemd/system && chown minio-user:minio-user /var/lib/minio/data',
  'umask 077',
  'cat > /etc/default/minio',
  'printf \'MINIO_VOLUMES="/var/lib/minio/data"\\nMINIO_OPTS="--address :%s --console-address :%s"\\n\' "$port" "$console" >> /etc/default/minio',
  'umask 022',
  'printf \'%s\\n\' "[Unit]" "Description=MinIO" "Wants=network-online.target" "After=network-online.target" "" "[Service]" "User=minio-user" "Group=minio-user" "EnvironmentFile=/etc/default/minio" "ExecStart=/usr/local/bin/minio server \\$MINIO_OPTS \\$MINIO_VOLUMES" "Restart=always" "LimitNOFILE=65536" "" "[Install]" "WantedBy=multi-user.target" > /etc/systemd/system/minio.service',
  'systemctl daemon-reload',
  'systemctl enable --now minio',
].join('\n')

/** The environment file's secret lines (sent on stdin). */
export const minioEnvFile = (m: MinioConfig) => `MINIO_ROOT_USER=${JSON.stringify(m.accessKey)}\nMINIO_ROOT_PASSWORD=${JSON.stringify(m.secretKey)}\n`

export function minioBinaryUrl(cfg: Config): string {
  const v = process.env.HDR_MINIO_BINARY_URL || cfg.vars.get('minio_binary_url')?.value
  const url = typeof v === 'string' && v ? v : MINIO_DEFAULT_URL
  if (!/^(https?|ftp):\/\/[^\s'"]+$/.test(url)) throw new DrError('prerequisites', `minio_binary_url ${JSON.stringify(url)} is not an http(s) URL.`)
  return url
}

// ---- waiting for S3 --------------------------------------------------------------------------------

/** Polls ListBuckets until S3 answers with the credentials, or the deadline. Returns the attempts. */
export async function waitForS3(s3: S3, deadlineMs: number, onTick: (secs: number, last: string) => void): Promise<{ ok: true; attempts: number } | { ok: false; attempts: number; last: S3FailureKind }> {
  const end = Date.now() + deadlineMs
  const t0 = Date.now()
  for (let attempt = 1; ; attempt++) {
    let last: S3FailureKind
    try {
      await listBuckets(s3)
      return { ok: true, attempts: attempt }
    } catch (e) {
      last = classify(e)
      if (last === 'credentials') return { ok: false, attempts: attempt, last }
    }
    onTick(Math.round((Date.now() - t0) / 1000), last)
    if (Date.now() >= end) return { ok: false, attempts: attempt, last }
    await new Promise((r) => setTimeout(r, 1000))
  }
}

// ---- pushing the states back -------------------------------------------------------------------------

export interface StateCandidate {
  env: Environment
  bucket: string
  key: string
  /** The newest valid local copy, or undefined. */
  local: { file: string; state: TfState; text: string } | undefined
}

/**
 * The newest local copy of an environment's state: from --state-from DIR (DIR/<env>/*.tfstate or
 * DIR/<env>.tfstate) when given, else the snapshot mirror that `restore:state snapshot` keeps.
 */
export function newestLocalState(env: Environment, from: string | undefined): StateCandidate['local'] {
  let copies
  if (from) {
    const dir = join(from, env.name)
    const files = [
      ...(existsSync(dir) && statSync(dir).isDirectory() ? readdirSync(dir).filter((n) => n.endsWith('.tfstate')).map((n) => join(dir, n)) : []),
      join(from, `${env.name}.tfstate`),
    ].filter((f) => existsSync(f))
    copies = files.flatMap((file) => {
      const text = readFileSync(file, 'utf8')
      const r = tryParseState(text)
      return r.ok ? [{ file, state: r.state, mtime: statSync(file).mtime }] : []
    }).sort((a, b) => b.state.serial - a.state.serial || b.mtime.getTime() - a.mtime.getTime())
  } else {
    copies = localCopies(env.name)
  }
  const best = copies[0]
  return best ? { file: best.file, state: best.state, text: readFileSync(best.file, 'utf8') } : undefined
}

export type PushOutcome =
  | { kind: 'uploaded'; serial: number; lineage: string; file: string; versionId: string | undefined }
  | { kind: 'kept'; reason: string }
  | { kind: 'no-copy' }

/**
 * Uploads the local copy when the object is missing. An existing object is never overwritten (an
 * older serial or another lineage could lose resources): it is read and compared, and kept.
 */
export async function pushState(s3: S3, c: StateCandidate, write: boolean): Promise<PushOutcome> {
  if (!c.local) return { kind: 'no-copy' }
  const { state } = c.local
  if (await exists(s3, c.bucket, c.key)) {
    const cur = tryParseState((await getText(s3, c.bucket, c.key)).text)
    if (!cur.ok) return { kind: 'kept', reason: `an object is there (not valid state: ${cur.reason}); not overwritten` }
    const why = cur.state.lineage !== state.lineage ? `another lineage (${cur.state.lineage.slice(0, 8)})` : cur.state.serial >= state.serial ? `serial ${cur.state.serial} ≥ the local ${state.serial}` : `serial ${cur.state.serial} < the local ${state.serial}: use restore:state to roll forward`
    return { kind: 'kept', reason: `already there, ${why}; not overwritten` }
  }
  const versionId = write ? await putText(s3, c.bucket, c.key, c.local.text) : undefined
  return { kind: 'uploaded', serial: state.serial, lineage: state.lineage, file: c.local.file, versionId }
}

// ---- reconnecting Terraform ----------------------------------------------------------------------------

/** `terraform init -reconfigure` then `terraform state list` in the environment: the proof, as a line. */
export async function reconnect(env: Environment, creds: TfCredentials): Promise<string> {
  await init(env.dir, ['-reconfigure'], { creds, timeoutMs: 180_000 })
  const r = await terraform(env.dir, ['state', 'list'], { creds, timeoutMs: 120_000 })
  if (r.exitCode !== 0) throw new DrError('verification', `terraform state list failed in ${env.name} (exit ${r.exitCode}): ${lastLines(r)}`)
  const n = r.stdout.split('\n').filter((l) => l.trim()).length
  return `terraform init + state list: ${n} resource${n === 1 ? '' : 's'}`
}
