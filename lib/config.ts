// The operator's homelab as one typed, validated object, read from their Terraform repo as it is
// (EF-005): variable values as Terraform resolves them (defaults < TF_VAR_ < tfvars < auto.tfvars <
// HDR_VAR_FILES), the Proxmox node from the provider block when no setting names it, every root module
// as an environment with its own backend (block < backend.hcl/*.tfbackend < what `terraform init`
// recorded), and `.env` overrides (only homelab-dr's own keys). docs/configuration.md is the manual.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { basename, join, relative, resolve } from 'node:path'
import { parse as parseDotenv } from 'dotenv'
import { DrError } from './errors.ts'
import { registerSecret } from './output.ts'
import { listKeys, type S3 } from './s3.ts'
import type { NodeTarget } from './ssh.ts'
import {
  at, attributeLine, isOverride, lineOf, parseBackendFile, parseEnvVar, parseVarFile, readFolder, varFilesIn,
  type Backend, type TfFolder, type Where,
} from './tfvars.ts'

export interface MinioConfig {
  /** The MinIO container; undefined when MinIO is not a Proxmox CT (a NAS, a host). Only rebuild:minio needs it. */
  ctid: number | undefined
  ip: string
  port: number
  consolePort: number
  accessKey: string
  secretKey: string
  buckets: string[]
  endpoint: string
}

export interface MonitoringConfig {
  vmid: number
  ip: string
  prometheusPort: number
  grafanaPort: number
  alertmanagerPort: number
}

export interface Environment {
  name: string
  dir: string
  backend: Backend | undefined
  /** For an s3 backend: where the state lives. */
  bucket?: string
  key?: string
  workspaceKeyPrefix: string
  /** The S3 endpoint given for this environment; undefined for plain AWS S3 (see `aws`). */
  endpoint?: string
  region?: string
  /** An s3 backend with no endpoint: AWS S3, not MinIO. */
  aws: boolean
  /** Credentials written in the backend settings (access_key / secret_key), if any. */
  accessKey?: string
  secretKey?: string
  /** Where each backend setting came from, e.g. { bucket: 'prod/backend.hcl:1' }. */
  sources: Record<string, string>
  /** The -backend-config files this environment's `terraform init` needs (absolute paths). */
  backendConfigFiles: string[]
  /** The workspace terraform has selected here (.terraform/environment, TF_WORKSPACE), else 'default'. */
  workspace: string
  /** Non-default workspaces known locally (terraform.tfstate.d/<w>, .terraform/environment). */
  workspaces: string[]
  /** Why this environment's state cannot be reached (e.g. a var. in its backend block); thrown when used. */
  problem?: DrError
}

export interface Config {
  tfDir: string
  /** The variable-value files read (tfvars, auto.tfvars, HDR_VAR_FILES), for error messages. */
  files: string[]
  nodes: NodeTarget[]
  /** Where the node list came from (file:line, or the .env key). */
  nodesFrom: string
  backupStorage: string
  guestStorage: string | undefined
  /** Undefined when the homelab declares no MinIO; requireMinio() explains what is missing. */
  minio: MinioConfig | undefined
  monitoring: MonitoringConfig | undefined
  environments: Environment[]
  /** Raw variables with the file (and line) each came from. */
  vars: Map<string, { value: unknown; file: string; line?: number }>
  /** Every .tf file read. */
  tfFiles: string[]
  /** `.env` files read: the keys loaded and the keys refused. */
  dotenv: Array<{ file: string; loaded: string[]; refused: string[] }>
  /** Each homelab-dr setting read, with where its value came from (for `npm run config`). */
  used: Map<string, string>
  /** minio_root_user / minio_root_password, when set (with or without minio_ip): S3 credentials of last resort. */
  s3Credentials: { accessKey: string; secretKey: string; from: string } | undefined
  /** With { lenient: true }: what could not be read (the strict load throws the first instead). MinIO's
   *  and monitoring's are kept even by a strict load: requireMinio/requireMonitoring throw them. */
  problems: Array<{ setting: 'nodes' | 'storage' | 'minio' | 'monitoring' | 'credentials'; error: DrError }>
}

export interface LoadOptions {
  /**
   * Record a missing or invalid setting in cfg.problems instead of throwing, so a task that does not
   * need it (restore:state needs no node) and the doctor still run. Parse errors still throw.
   */
  lenient?: boolean
}

const ENV_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/

/** Locates the Terraform repo: --tf-dir, then $HOMELAB_TF_DIR, then the current folder. */
export function findTfDir(flag: string | undefined): string {
  const dir = resolve(flag ?? process.env.HOMELAB_TF_DIR ?? '.')
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new DrError('prerequisites', `Terraform repo not found: ${dir} is not a folder.`, 'Pass --tf-dir DIR or set HOMELAB_TF_DIR.')
  }
  return dir
}

export async function loadConfig(tfDirFlag: string | undefined, opts: LoadOptions = {}): Promise<Config> {
  const tfDir = findTfDir(tfDirFlag)
  const dotenv = loadDotenv(tfDir)
  const { top, roots } = await findRoots(tfDir)
  const { vars, files } = await readValues(tfDir, top, roots)
  const declaredIn = [...new Set([top, ...roots].flatMap((f) => [...f.declared.values()].map((w) => w.file)))]
  const r = new Reader(vars, [...files, ...declaredIn])

  const problems: Config['problems'] = []
  const read = <T>(setting: Config['problems'][number]['setting'], fn: () => T, fallback: T, keep = opts.lenient): T => {
    try {
      return fn()
    } catch (e) {
      if (!keep || !(e instanceof DrError)) throw e
      problems.push({ setting, error: e })
      return fallback
    }
  }
  // MinIO and monitoring are only some tasks' business: even a strict load keeps their error for
  // requireMinio/requireMonitoring, so restore:vm and verify:backups still run in a repo whose MinIO
  // credentials live in a -var-file (secrets.tfvars) homelab-dr is not given.
  const section = <T>(setting: 'minio' | 'monitoring', fn: () => T | undefined) => read(setting, fn, undefined, true)
  const { nodes, from } = read('nodes', () => readNodes(r, [top, ...roots]), { nodes: [] as NodeTarget[], from: '' })
  const environments = roots.length ? await readEnvironments(tfDir, roots) : []
  const cfg: Config = {
    tfDir,
    files,
    nodes,
    nodesFrom: from,
    backupStorage: read('storage', () => r.str('backup_storage', 'local'), 'local'),
    guestStorage: read('storage', () => r.optStr('guest_storage'), undefined),
    minio: section('minio', () => (r.has('minio_ip') ? readMinio(r, environments) : undefined)),
    monitoring: section('monitoring', () => (r.has('monitoring_vmid') ? readMonitoring(r) : undefined)),
    environments,
    vars: new Map([...vars].map(([k, v]) => [k, { value: v.value, file: v.file, ...(v.line ? { line: v.line } : {}) }])),
    tfFiles: [...new Set([top, ...roots].flatMap((f) => f.files))],
    dotenv,
    used: r.used,
    s3Credentials: undefined,
    problems,
  }
  if (r.has('minio_root_user') && r.has('minio_root_password')) {
    cfg.s3Credentials = read('credentials', () => ({ accessKey: r.str('minio_root_user'), secretKey: r.str('minio_root_password'), from: r.used.get('minio_root_user')! }), undefined)
    registerSecret(cfg.s3Credentials?.secretKey)
  }
  return cfg
}

/** Why a setting could not be read, when it could not. */
export const problemOf = (cfg: Config, setting: Config['problems'][number]['setting']) => cfg.problems.find((p) => p.setting === setting)?.error

export function requireMinio(cfg: Config): MinioConfig {
  const problem = problemOf(cfg, 'minio')
  if (problem) throw problem
  if (!cfg.minio) throw new DrError('prerequisites', `No MinIO settings: minio_ip is not set in ${cfg.files.join(', ') || 'any variable file'}.`, 'Add to .env: HDR_MINIO_IP=<address of MinIO>  (see docs/configuration.md).')
  return cfg.minio
}

/** The MinIO container's id: only rebuild:minio needs it (MinIO may be a NAS or a plain host). */
export function requireMinioCtid(cfg: Config): number {
  const m = requireMinio(cfg)
  if (m.ctid === undefined) throw new DrError('prerequisites', 'No MinIO container: minio_ctid is not set, so MinIO is not a Proxmox container homelab-dr can rebuild.', 'If MinIO runs in a CT, add to .env: HDR_MINIO_CTID=<its CT id>')
  return m.ctid
}

export function requireMonitoring(cfg: Config): MonitoringConfig {
  const problem = problemOf(cfg, 'monitoring')
  if (problem) throw problem
  if (!cfg.monitoring) throw new DrError('prerequisites', `No monitoring settings: monitoring_vmid is not set in ${cfg.files.join(', ') || 'any variable file'}.`, 'Add to .env: HDR_MONITORING_VMID=<VM id> and HDR_MONITORING_IP=<address>  (see docs/configuration.md).')
  return cfg.monitoring
}

export function findEnvironment(cfg: Config, name: string | undefined): Environment {
  const names = cfg.environments.map((e) => e.name)
  if (!name) throw new DrError('usage', `Missing --env NAME (one of: ${names.join(', ') || 'none found'}).`)
  if (!ENV_NAME.test(name)) throw new DrError('usage', `Invalid environment name ${JSON.stringify(name)}: use lower-case letters, digits, - and _.`)
  const env = cfg.environments.find((e) => e.name === name)
  if (!env) throw new DrError('usage', `Unknown environment '${name}'. Known: ${names.join(', ') || 'none'} (root modules found in ${cfg.tfDir}).`, 'Run `npm run config` to see what was found.')
  return env
}

export function findNode(cfg: Config, name: string | undefined): NodeTarget {
  const first = cfg.nodes[0]
  if (!name) {
    if (!first) throw cfg.problems.find((p) => p.setting === 'nodes')?.error ?? new DrError('prerequisites', 'No Proxmox node configured.')
    return first
  }
  const node = cfg.nodes.find((n) => n.name === name)
  if (!node) throw new DrError('usage', `Unknown node '${name}'. Known: ${cfg.nodes.map((n) => n.name).join(', ')}.`)
  return node
}

/** Where and how to reach one environment's state: its own endpoint, region and credentials. */
export interface StateStore {
  /** The URL the S3 client talks to. */
  endpoint: string
  /** For the reader: the endpoint, or "AWS S3 (eu-west-1)". */
  label: string
  region: string
  aws: boolean
  accessKey: string
  secretKey: string
  /** Where the credentials came from (never the values). */
  credentialsFrom: string
}

/**
 * The S3 store of an environment's state. Every task uses this: each environment its own endpoint
 * (never another environment's, never a default standing in for one that was written down).
 */
export function stateStore(cfg: Config, env: Environment): StateStore {
  if (env.problem) throw env.problem
  if (env.backend?.type !== 's3' || !env.bucket || !env.key) {
    throw new DrError('prerequisites', `Environment '${env.name}' has no s3 backend (found: ${env.backend?.type ?? 'none'}), so its state is not in S3.`)
  }
  const region = env.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1'
  const endpoint = env.endpoint ?? `https://s3.${region}.amazonaws.com`
  const label = env.endpoint ?? `AWS S3 (${region})`
  let accessKey = env.accessKey
  let secretKey = env.secretKey
  let from = `the backend settings (${env.sources.access_key ?? '?'})`
  if (!accessKey || !secretKey) {
    accessKey = process.env.AWS_ACCESS_KEY_ID || undefined
    secretKey = process.env.AWS_SECRET_ACCESS_KEY || undefined
    from = 'AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY'
  }
  if ((!accessKey || !secretKey) && !env.aws && cfg.s3Credentials) {
    accessKey = cfg.s3Credentials.accessKey
    secretKey = cfg.s3Credentials.secretKey
    from = `minio_root_user / minio_root_password (${cfg.s3Credentials.from})`
  }
  if (!accessKey || !secretKey) {
    throw new DrError('prerequisites', `No S3 credentials for '${env.name}' (${label}): AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not set${env.aws ? '' : ', nor minio_root_user / minio_root_password'}.`, 'Add to .env: AWS_ACCESS_KEY_ID=<access key> and AWS_SECRET_ACCESS_KEY=<secret key>')
  }
  registerSecret(secretKey)
  return { endpoint, label, region, aws: env.aws, accessKey, secretKey, credentialsFrom: from }
}

/** `-backend-config=FILE` arguments for `terraform init` in this environment. */
export function backendConfigArgs(env: Environment): string[] {
  return env.backendConfigFiles.map((f) => `-backend-config=${f}`)
}

// ---- .env: only homelab-dr's own keys (issue 12.5) ----

/** Keys a .env may set: ours, the S3 credentials and region, Terraform variable values, the repo. */
const DOTENV_KEY = /^(HDR_[A-Z0-9_]+|TF_VAR_[A-Za-z0-9_]+|AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN|AWS_REGION|AWS_DEFAULT_REGION|AWS_ENDPOINT_URL_S3|HOMELAB_TF_DIR)$/
/** Ours, but able to run a program (ssh_config ProxyCommand): only from the real environment. */
const DOTENV_REFUSED = new Set(['HDR_SSH_CONFIG'])

export function dotenvAllowed(key: string): boolean {
  return DOTENV_KEY.test(key) && !DOTENV_REFUSED.has(key)
}

function loadDotenv(tfDir: string): Config['dotenv'] {
  // .env beside the repo, then in the current folder; real environment variables win over both.
  // Anything else in them (BASH_ENV, NODE_OPTIONS, PATH, ZX_*, …) could run code: never loaded.
  const out: Config['dotenv'] = []
  for (const path of [...new Set([join(tfDir, '.env'), resolve('.env')])]) {
    if (!existsSync(path)) continue
    const parsed = parseDotenv(readFileSync(path))
    const entry = { file: path, loaded: [] as string[], refused: [] as string[] }
    for (const [k, v] of Object.entries(parsed)) {
      if (!dotenvAllowed(k)) entry.refused.push(k)
      else if (process.env[k] === undefined) (process.env[k] = v), entry.loaded.push(k)
    }
    out.push(entry)
  }
  return out
}

// ---- which folders are environments ----

const SKIP_DIR = (name: string) => name.startsWith('.') || name === 'modules' || name === 'node_modules' || name === 'terraform.tfstate.d'

/**
 * Root modules: a folder with a backend block or a provider configuration (and folders directly under
 * environments/ with .tf files), that no other folder calls as a module. --tf-dir may be a root itself,
 * or hold roots one or two levels down.
 */
async function findRoots(tfDir: string): Promise<{ top: TfFolder; roots: TfFolder[] }> {
  const top = await readFolder(tfDir, tfDir)
  if (top.backend || top.providers.length) return { top, roots: [top] }
  const found: TfFolder[] = []
  const walk = async (dir: string, depth: number): Promise<void> => {
    for (const d of readdirSync(dir, { withFileTypes: true }).filter((x) => x.isDirectory() && !SKIP_DIR(x.name)).sort((a, b) => a.name.localeCompare(b.name))) {
      const sub = join(dir, d.name)
      if (readdirSync(sub).some((n) => n.endsWith('.tf') && !isOverride(n))) found.push(await readFolder(sub, tfDir))
      if (depth < 2) await walk(sub, depth + 1)
    }
  }
  await walk(tfDir, 1)
  const called = new Set([top, ...found].flatMap((f) => f.moduleDirs))
  const roots = found.filter((f) => !called.has(f.dir) && (f.backend || f.providers.length || basename(resolve(f.dir, '..')) === 'environments'))
  return { top, roots }
}

function envNames(tfDir: string, roots: TfFolder[]): string[] {
  const clean = (s: string) => s.toLowerCase().replace(/[^a-z0-9_-]+/g, '-').replace(/^[-_]+/, '').slice(0, 63) || 'default'
  const base = roots.map((f) => clean(basename(f.dir)))
  return roots.map((f, i) => (base.filter((b) => b === base[i]).length > 1 ? clean(relative(tfDir, f.dir).split('/').filter((p) => p !== 'environments').join('-')) : base[i]!))
}

// ---- variable values, as Terraform resolves them ----

interface VarEntry extends Where {
  value: unknown
  /** 1 default, 2 TF_VAR_, 3 tfvars/auto.tfvars, 4 HDR_VAR_FILES. */
  rank: number
  folder: number
  order: number
}

async function readValues(tfDir: string, top: TfFolder, roots: TfFolder[]): Promise<{ vars: Map<string, VarEntry>; files: string[] }> {
  const vars = new Map<string, VarEntry>()
  const files: string[] = []
  let order = 0
  const offer = (name: string, e: VarEntry) => {
    const old = vars.get(name)
    // Highest rank wins; at equal rank the first folder (top level, then environments A→Z) wins, and
    // within one folder the later file wins (as Terraform applies them).
    if (!old || e.rank > old.rank || (e.rank === old.rank && (e.folder < old.folder || (e.folder === old.folder && e.order > old.order)))) vars.set(name, e)
  }
  const folders = roots[0] === top ? [top] : [top, ...roots]
  for (const [i, f] of folders.entries()) {
    for (const [name, d] of f.defaults) offer(name, { ...d, rank: 1, folder: i, order: order++ })
    for (const file of varFilesIn(f.dir)) {
      const shown = relative(tfDir, file)
      files.push(shown)
      for (const [name, value] of Object.entries(await parseVarFile(file, tfDir))) offer(name, { value, file: shown, line: attributeLine(file, name), rank: 3, folder: i, order: order++ })
    }
  }
  for (const [k, v] of Object.entries(process.env)) {
    const m = /^TF_VAR_(.+)$/.exec(k)
    if (m && v !== undefined) offer(m[1]!, { value: await parseEnvVar(m[1]!, v), file: `${k} (environment)`, rank: 2, folder: 0, order: order++ })
  }
  for (const name of (process.env.HDR_VAR_FILES ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const file = resolve(tfDir, name)
    if (!existsSync(file)) throw new DrError('prerequisites', `HDR_VAR_FILES names ${name}, which does not exist (looked for ${file}).`, 'Fix HDR_VAR_FILES in .env: comma-separated paths, relative to the Terraform repo.')
    const shown = relative(tfDir, file)
    files.push(shown)
    for (const [k, value] of Object.entries(await parseVarFile(file, tfDir))) offer(k, { value, file: shown, line: attributeLine(file, k), rank: 4, folder: 0, order: order++ })
  }
  return { vars, files }
}

/** Typed access to the variables, with errors that name the key and the files searched. */
class Reader {
  /** key → where its value came from, for the doctor. */
  readonly used = new Map<string, string>()

  constructor(
    readonly vars: Map<string, VarEntry>,
    private readonly files: string[],
  ) {}

  /** The variable to read for a key: HDR_VARS_MAP="minio_ip=storage_ip,…" renames; hdr_<key> is ours. */
  name(key: string): string {
    const map = process.env.HDR_VARS_MAP ?? ''
    for (const pair of map.split(',')) {
      const [k, v] = pair.split('=').map((s) => s.trim())
      if (k === key && v) return v
    }
    return this.vars.has(`hdr_${key}`) ? `hdr_${key}` : key
  }

  private raw(key: string): { value: unknown; where: string; line?: number } | undefined {
    const envName = `HDR_${key.toUpperCase()}` // .env / environment override
    const fromEnv = process.env[envName]
    if (fromEnv !== undefined && fromEnv !== '') {
      this.used.set(key, envName)
      return { value: fromEnv, where: envName }
    }
    const v = this.vars.get(this.name(key))
    // An empty default (default = "") is Terraform's "not set here".
    if (!v || (v.rank === 1 && v.value === '')) return undefined
    this.used.set(key, at(v))
    return { value: v.value, where: v.file, ...(v.line ? { line: v.line } : {}) }
  }

  has(key: string): boolean {
    return this.raw(key) !== undefined
  }

  /** A value for resolving `var.x` in provider blocks (no HDR_ override, no renaming). */
  tfValue(name: string): VarEntry | undefined {
    return this.vars.get(name)
  }

  missing(key: string, what: string, envLine = `HDR_${key.toUpperCase()}=<value>`): DrError {
    const name = this.name(key)
    return new DrError('prerequisites', `Missing ${what}: variable '${name}' is not set (searched ${this.files.join(', ') || 'no variable file: none found'}).`, `Add to .env: ${envLine}  (or map your own variable with HDR_VARS_MAP; docs/configuration.md).`)
  }

  invalid(key: string, where: string, why: string): DrError {
    return new DrError('prerequisites', `Invalid '${this.name(key)}' in ${where}: ${why}.`)
  }

  str(key: string, fallback?: string): string {
    const v = this.raw(key)
    if (!v) {
      if (fallback !== undefined) return fallback
      throw this.missing(key, key)
    }
    if (typeof v.value !== 'string' || v.value === '') throw this.invalid(key, v.where, 'expected a non-empty string')
    return v.value
  }

  optStr(key: string): string | undefined {
    return this.has(key) ? this.str(key) : undefined
  }

  int(key: string, min: number, max: number, fallback?: number): number {
    const v = this.raw(key)
    if (!v) {
      if (fallback !== undefined) return fallback
      throw this.missing(key, key)
    }
    const n = typeof v.value === 'string' && /^\d+$/.test(v.value) ? Number(v.value) : v.value
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) throw this.invalid(key, v.where, `expected a whole number from ${min} to ${max}, got ${JSON.stringify(v.value)}`)
    return n
  }

  ip(key: string): string {
    const s = this.str(key)
    if (!isHost(s)) throw this.invalid(key, this.raw(key)!.where, `expected an IP address or host name, got ${JSON.stringify(s)}`)
    return s
  }

  list(key: string, fallback: string[]): string[] {
    const v = this.raw(key)
    if (!v) return fallback
    const value = typeof v.value === 'string' ? v.value.split(',').map((s) => s.trim()) : v.value
    if (!Array.isArray(value) || !value.every((x) => typeof x === 'string' && x)) throw this.invalid(key, v.where, 'expected a list of strings')
    return value as string[]
  }

  value(key: string): { value: unknown; where: string; line?: number } | undefined {
    return this.raw(key)
  }
}

const isHost = (s: string) => /^[A-Za-z0-9][A-Za-z0-9.:-]*$/.test(s) && s.length <= 253
const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9-]*$/
const USER = /^[A-Za-z_][A-Za-z0-9_.-]*$/
const hostOfUrl = (url: string) => /^[a-z]+:\/\/\[?([^\]/:]+)/i.exec(url)?.[1]

/**
 * `${var.x}`, `${local.y}`, `${var.o.attr}` and "https://${var.ip}:8006" resolved against the values;
 * undefined when any part is not known statically.
 */
function resolveExpr(v: unknown, r: Reader, folder: TfFolder): unknown {
  if (typeof v !== 'string' || !v.includes('${')) return v
  const lookup = (ref: string): unknown => {
    const [root, name, ...path] = ref.split('.')
    let cur: unknown = root === 'var' ? r.tfValue(name ?? '')?.value : root === 'local' ? resolveExpr(folder.locals.get(name ?? '')?.value, r, folder) : undefined
    for (const p of path) cur = cur && typeof cur === 'object' ? (cur as Record<string, unknown>)[p] : undefined
    return cur
  }
  const whole = /^\$\{((?:var|local)\.[A-Za-z0-9_.-]+)\}$/.exec(v)
  if (whole) return lookup(whole[1]!)
  let unknown = false
  const out = v.replace(/\$\{([^}]*)\}/g, (_, ref: string) => {
    const x = /^(?:var|local)\.[A-Za-z0-9_.-]+$/.test(ref.trim()) ? lookup(ref.trim()) : undefined
    if (typeof x !== 'string' && typeof x !== 'number') unknown = true
    return String(x)
  })
  return unknown ? undefined : out
}

// ---- the Proxmox node(s) ----

function readNodes(r: Reader, folders: TfFolder[]): { nodes: NodeTarget[]; from: string } {
  const provider = providerNodes(r, folders)
  const port = () => r.int('proxmox_ssh_port', 1, 65535, 22)
  const user = (fallback?: string) => r.str('proxmox_ssh_user', fallback ?? 'root')

  const list = r.value('proxmox_nodes')
  if (list) {
    const where = list.line ? `${list.where}:${list.line}` : list.where
    return { nodes: nodesFromValue(r, list.value, list.where, provider, port, user), from: where }
  }
  // The common single-node layout: proxmox_node + proxmox_host.
  const host = r.optStr('proxmox_host')
  if (host) {
    if (!isHost(host)) throw r.invalid('proxmox_host', r.value('proxmox_host')!.where, `not a host: ${JSON.stringify(host)}`)
    return { nodes: [{ name: r.str('proxmox_node', provider?.nodes[0]?.name ?? 'pve'), host, port: port(), user: user(provider?.user) }], from: r.used.get('proxmox_host')! }
  }
  // The provider block (bpg/proxmox endpoint + ssh { node { … } }, Telmate pm_api_url).
  if (provider?.nodes.length) {
    const name = r.optStr('proxmox_node')
    const nodes = provider.nodes.map((n, i) => ({ name: i === 0 && name && provider.nodes.length === 1 ? name : n.name, host: n.host, port: n.port ?? port(), user: user(provider.user) }))
    for (const n of nodes) checkNode(r, n, provider.from)
    return { nodes, from: provider.from }
  }
  // The API URL as a variable.
  const url = r.optStr('proxmox_api_url') ?? r.optStr('pm_api_url') ?? r.optStr('proxmox_endpoint')
  const fromUrl = url ? hostOfUrl(url) : undefined
  if (!fromUrl) throw r.missing('proxmox_nodes', 'the Proxmox node address (proxmox_nodes, proxmox_host or proxmox_api_url)', 'HDR_PROXMOX_NODES=pve=root@<node address>:22')
  const node = { name: r.str('proxmox_node', 'pve'), host: fromUrl, port: port(), user: user() }
  checkNode(r, node, r.used.get('proxmox_api_url') ?? r.used.get('pm_api_url') ?? r.used.get('proxmox_endpoint') ?? 'the API URL')
  return { nodes: [node], from: r.used.get('proxmox_api_url') ?? r.used.get('pm_api_url') ?? r.used.get('proxmox_endpoint')! }
}

function checkNode(r: Reader, n: NodeTarget, where: string): void {
  if (!NODE_NAME.test(n.name)) throw r.invalid('proxmox_nodes', where, `node name ${JSON.stringify(n.name)} is not a host name`)
  if (!isHost(n.host)) throw r.invalid('proxmox_nodes', where, `node '${n.name}' needs host = "<ip or name>"`)
  if (!Number.isInteger(n.port) || n.port < 1 || n.port > 65535) throw r.invalid('proxmox_nodes', where, `node '${n.name}' port must be 1-65535`)
  if (!USER.test(n.user)) throw r.invalid('proxmox_nodes', where, `node '${n.name}' user is not a user name`)
}

/**
 * proxmox_nodes in the shapes homelabs write: our map of name → { host, port, user }, a map of name →
 * address, a list/set of names, a list of objects with name + host/ip/address, or (HDR_PROXMOX_NODES)
 * "pve=root@10.0.0.2:22,pve2=10.0.0.3". Names without an address take it from the provider block.
 */
function nodesFromValue(r: Reader, value: unknown, where: string, provider: ProviderNodes | undefined, port: () => number, user: (f?: string) => string): NodeTarget[] {
  const items: Array<{ name: unknown; host?: unknown; port?: unknown; user?: unknown }> = []
  if (typeof value === 'string') {
    for (const part of value.split(',').map((s) => s.trim()).filter(Boolean)) {
      const m = /^([^=]+?)(?:=(?:([^@]+)@)?([^:]+)(?::(\d+))?)?$/.exec(part)
      if (!m) throw r.invalid('proxmox_nodes', where, `cannot read ${JSON.stringify(part)}: use name=user@host:port`)
      items.push({ name: m[1], host: m[3], port: m[4] ? Number(m[4]) : undefined, user: m[2] })
    }
  } else if (Array.isArray(value)) {
    for (const x of value) {
      if (typeof x === 'string') items.push({ name: x })
      else if (x && typeof x === 'object') {
        const o = x as Record<string, unknown>
        items.push({ name: o.name ?? o.node_name ?? o.node, host: o.host ?? o.ip ?? o.address, port: o.port ?? o.ssh_port, user: o.user ?? o.ssh_user })
      } else throw r.invalid('proxmox_nodes', where, 'expected node names or objects with name and host')
    }
  } else if (value && typeof value === 'object') {
    for (const [name, v] of Object.entries(value as Record<string, unknown>)) {
      if (typeof v === 'string') items.push({ name, host: v })
      else {
        const o = (v ?? {}) as Record<string, unknown>
        items.push({ name, host: o.host ?? o.ip ?? o.address, port: o.port ?? o.ssh_port, user: o.user ?? o.ssh_user })
      }
    }
  } else throw r.invalid('proxmox_nodes', where, 'expected a map of node name to { host, port, user }, a list of names, or a list of { name, host }')
  const nodes: NodeTarget[] = []
  for (const it of items) {
    const name = it.name
    if (typeof name !== 'string' || !NODE_NAME.test(name)) throw r.invalid('proxmox_nodes', where, `node name ${JSON.stringify(name)} is not a host name`)
    const fromProvider = provider?.nodes.find((n) => n.name === name) ?? (provider?.nodes.length === 1 && items.length === 1 ? provider.nodes[0] : undefined)
    const host = it.host ?? fromProvider?.host
    if (host === undefined) {
      throw new DrError('prerequisites', `Node '${name}' in proxmox_nodes (${where}) has no address, and no provider block names one.`, `Add to .env: HDR_PROXMOX_NODES=${items.map((i) => `${String(i.name)}=root@<address>:22`).join(',')}`)
    }
    const n = { name, host: host as string, port: (it.port ?? fromProvider?.port ?? port()) as number, user: (it.user ?? user(provider?.user)) as string }
    if (typeof n.host !== 'string') throw r.invalid('proxmox_nodes', where, `node '${name}' needs host = "<ip or name>"`)
    checkNode(r, n, where)
    nodes.push(n)
  }
  if (nodes.length === 0) throw r.invalid('proxmox_nodes', where, 'no node listed')
  return nodes
}

interface ProviderNodes {
  nodes: Array<{ name: string; host: string; port?: number }>
  user?: string
  from: string
}

/** The nodes a `provider "proxmox"` block names, with var./local. resolved; undefined when none. */
function providerNodes(r: Reader, folders: TfFolder[]): ProviderNodes | undefined {
  for (const f of folders) {
    for (const p of f.providers.filter((x) => x.name === 'proxmox')) {
      const b = p.value
      const from = `provider "proxmox" in ${at(p)}`
      const ssh = (Array.isArray(b.ssh) ? b.ssh[0] : b.ssh) as Record<string, unknown> | undefined
      const sshUser = resolveExpr(ssh?.username, r, f)
      const user = typeof sshUser === 'string' ? sshUser.replace(/@.*$/, '') : undefined
      const nodes: ProviderNodes['nodes'] = []
      for (const n of (Array.isArray(ssh?.node) ? ssh.node : []) as Array<Record<string, unknown>>) {
        const name = resolveExpr(n.name, r, f)
        const host = resolveExpr(n.address, r, f)
        const port = resolveExpr(n.port, r, f)
        if (typeof name === 'string' && typeof host === 'string') nodes.push({ name, host, ...(typeof port === 'number' ? { port } : {}) })
      }
      if (!nodes.length) {
        const url = resolveExpr(b.endpoint ?? b.pm_api_url, r, f)
        const host = typeof url === 'string' ? hostOfUrl(url) : undefined
        const named = f.nodeNames.map((n) => resolveExpr(n.value, r, f)).find((n): n is string => typeof n === 'string')
        if (host) nodes.push({ name: named ?? 'pve', host })
      }
      if (nodes.length) return { nodes, ...(user ? { user } : {}), from }
    }
  }
  return undefined
}

// ---- environments and their backends ----

const BACKEND_FILE = (n: string) => n === 'backend.hcl' || n === 'backend.conf' || n.endsWith('.tfbackend') || n.endsWith('.backend.hcl')

async function readEnvironments(tfDir: string, roots: TfFolder[]): Promise<Environment[]> {
  const names = envNames(tfDir, roots)
  const out: Environment[] = []
  for (const [i, root] of roots.entries()) {
    const files = readdirSync(root.dir).filter(BACKEND_FILE).sort()
    if (files.length > 1 && root.backend) {
      // One root, one backend file per environment (prod.tfbackend, dev.tfbackend): each is an environment.
      for (const f of files) {
        const stem = f.replace(/(\.backend)?\.(hcl|conf|tfbackend)$/, '').replace(/\.tfbackend$/, '')
        out.push(await readEnvironment(tfDir, root, roots.length === 1 ? stem : `${names[i]}-${stem}`, [join(root.dir, f)], false))
      }
    } else out.push(await readEnvironment(tfDir, root, names[i]!, files.map((f) => join(root.dir, f)), true))
  }
  return out.sort((a, b) => a.name.localeCompare(b.name))
}

async function readEnvironment(tfDir: string, root: TfFolder, name: string, configFiles: string[], useRecorded: boolean): Promise<Environment> {
  const b = root.backend
  const env: Environment = { name, dir: root.dir, backend: b, workspaceKeyPrefix: 'env:', aws: false, sources: {}, backendConfigFiles: configFiles, workspace: 'default', workspaces: [] }
  const shown = (file: string) => relative(tfDir, file) || file
  // Workspaces known locally.
  const envFile = join(root.dir, '.terraform', 'environment')
  const selected = process.env.TF_WORKSPACE || (existsSync(envFile) ? readFileSync(envFile, 'utf8').trim() : '')
  if (selected) env.workspace = selected
  const tfstateD = join(root.dir, 'terraform.tfstate.d')
  const local = existsSync(tfstateD) ? readdirSync(tfstateD, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name) : []
  env.workspaces = [...new Set([...local, ...(selected && selected !== 'default' ? [selected] : [])])].sort()
  if (!b) return env

  // 1. the block; 2. -backend-config files; 3. what terraform init recorded (what terraform uses now).
  const settings: Record<string, unknown> = {}
  const text = readFileSync(b.file, 'utf8')
  const blockLine = b.line ?? 1
  for (const [k, v] of Object.entries(b.settings)) {
    const line = lineOf(text.split('\n').slice(blockLine - 1).join('\n'), new RegExp(`^\\s*${k}\\s*=`))
    const where = `${shown(b.file)}:${line ? blockLine - 1 + line : blockLine}`
    if (JSON.stringify(v).includes('${')) {
      // Terraform reads the backend before any variable exists; it refuses this, and so do we.
      env.problem = new DrError('prerequisites', `The backend block of '${name}' (${where}) sets ${k} from an expression: Variables not allowed — Variables may not be used here. (terraform init refuses it too.)`,
        `Write the value in a file, e.g. ${shown(join(root.dir, 'backend.hcl'))} with ${k} = "…", and run terraform init -backend-config=backend.hcl (homelab-dr reads that file).`)
      continue
    }
    settings[k] = v
    env.sources[k] = where
  }
  for (const file of configFiles) {
    const parsed = await parseBackendFile(file, tfDir)
    const ftext = readFileSync(file, 'utf8')
    for (const [k, v] of Object.entries(parsed.value)) {
      settings[k] = v
      env.sources[k] = `${parsed.file}:${lineOf(ftext, new RegExp(`^\\s*${k}\\s*=`)) ?? 1}`
    }
  }
  const recordedFile = join(root.dir, '.terraform', 'terraform.tfstate')
  if (useRecorded && existsSync(recordedFile)) {
    try {
      const rec = JSON.parse(readFileSync(recordedFile, 'utf8')) as { backend?: { type?: string; config?: Record<string, unknown> } }
      if (rec.backend?.type === b.type) {
        for (const [k, v] of Object.entries(rec.backend.config ?? {})) {
          const value = k === 'endpoints' && v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).filter(([, x]) => x !== null)) : v
          if (value === null || value === undefined || (k === 'endpoints' && Object.keys(value as object).length === 0)) continue
          if (JSON.stringify(settings[k]) === JSON.stringify(value)) continue // the same as written: keep that source
          settings[k] = value
          env.sources[k] = `${shown(recordedFile)} (terraform init)`
        }
      }
    } catch {
      // A torn .terraform file: terraform init rewrites it; the block and files still stand.
    }
  }
  env.backend = { ...b, settings }
  if (b.type !== 's3') return env

  const s = (k: string) => (typeof settings[k] === 'string' && settings[k] !== '' ? (settings[k] as string) : undefined)
  if (s('bucket')) env.bucket = s('bucket')
  if (s('key')) env.key = s('key')
  if (s('region')) env.region = s('region')
  if (s('workspace_key_prefix')) env.workspaceKeyPrefix = s('workspace_key_prefix')!
  const endpoints = settings.endpoints as Record<string, unknown> | undefined
  const endpoint = (typeof endpoints?.s3 === 'string' ? endpoints.s3 : undefined) ?? s('endpoint')
  if (endpoint) {
    env.endpoint = endpoint
    if (typeof endpoints?.s3 === 'string') env.sources.endpoint = env.sources.endpoints ?? env.sources.endpoint ?? '?'
  } else if (process.env.AWS_ENDPOINT_URL_S3) {
    env.endpoint = process.env.AWS_ENDPOINT_URL_S3
    env.sources.endpoint = 'AWS_ENDPOINT_URL_S3 (environment)'
  } else if (!env.problem) env.aws = true
  if (s('access_key') && s('secret_key')) {
    env.accessKey = s('access_key')
    env.secretKey = s('secret_key')
    registerSecret(env.secretKey)
  }
  if (!env.problem && (!env.bucket || !env.key)) {
    const missing = !env.bucket ? 'bucket' : 'key'
    const searched = [`${shown(b.file)}:${blockLine}`, ...configFiles.map(shown), ...(useRecorded ? [shown(recordedFile)] : [])]
    env.problem = new DrError('prerequisites', `The s3 backend of '${name}' has no ${missing} (searched ${searched.join(', ')}).`,
      `Add ${missing} = "…" to ${shown(configFiles[0] ?? join(root.dir, 'backend.hcl'))} (the file you pass to terraform init -backend-config), or run terraform init there once.`)
  }
  return env
}

function readMinio(r: Reader, envs: Environment[]): MinioConfig {
  const ip = r.ip('minio_ip')
  const port = r.int('minio_port', 1, 65535, 9000)
  const accessKey = process.env.AWS_ACCESS_KEY_ID || r.str('minio_root_user')
  const secretKey = process.env.AWS_SECRET_ACCESS_KEY || r.str('minio_root_password')
  registerSecret(secretKey)
  const endpoint = envs.find((e) => e.endpoint)?.endpoint ?? `http://${ip}:${port}`
  return {
    ctid: r.has('minio_ctid') ? r.int('minio_ctid', 100, 999_999_999) : undefined,
    ip,
    port,
    consolePort: r.int('minio_console_port', 1, 65535, 9001),
    accessKey,
    secretKey,
    buckets: r.list('minio_buckets', ['tfstate']),
    endpoint,
  }
}

function readMonitoring(r: Reader): MonitoringConfig {
  return {
    vmid: r.int('monitoring_vmid', 100, 999_999_999),
    ip: r.ip('monitoring_ip'),
    prometheusPort: r.int('prometheus_port', 1, 65535, 9090),
    grafanaPort: r.int('grafana_port', 1, 65535, 3000),
    alertmanagerPort: r.int('alertmanager_port', 1, 65535, 9093),
  }
}


/**
 * The non-default workspaces whose state is in the bucket: keys <workspace_key_prefix>/<workspace>/<key>
 * (Terraform's S3 layout, `env:` by default). Takes an S3 client opened on the environment's own store.
 */
export async function workspacesInS3(s3: S3, env: Environment): Promise<string[]> {
  if (!env.bucket || !env.key) return []
  const prefix = `${env.workspaceKeyPrefix}/`
  const found = new Set<string>()
  for (const k of await listKeys(s3, env.bucket, prefix)) {
    const rest = k.slice(prefix.length)
    const slash = rest.indexOf('/')
    if (slash > 0 && rest.slice(slash + 1) === env.key) found.add(rest.slice(0, slash))
  }
  return [...found].sort()
}
