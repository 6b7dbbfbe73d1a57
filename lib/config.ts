// The operator's homelab as one typed, validated object, read from their Terraform repo (EF-005):
// the top-level and per-environment tfvars, the environments' backend blocks, and .env overrides.
// Variable names and the override mapping are documented in docs/configuration.md.
import { existsSync, readdirSync, statSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'
import { config as dotenv } from 'dotenv'
import { DrError } from './errors.ts'
import { registerSecret } from './output.ts'
import type { NodeTarget } from './ssh.ts'
import { readBackend, readVarFiles, type Backend, type VarFile } from './tfvars.ts'

export interface MinioConfig {
  ctid: number
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
  endpoint?: string
}

export interface Config {
  tfDir: string
  /** Every file read, for error messages and the report. */
  files: string[]
  nodes: NodeTarget[]
  backupStorage: string
  guestStorage: string | undefined
  /** Undefined when the homelab declares no MinIO; requireMinio() explains what is missing. */
  minio: MinioConfig | undefined
  monitoring: MonitoringConfig | undefined
  environments: Environment[]
  /** Raw variables with the file each came from. */
  vars: Map<string, { value: unknown; file: string }>
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

export async function loadConfig(tfDirFlag: string | undefined): Promise<Config> {
  const tfDir = findTfDir(tfDirFlag)
  loadDotenv(tfDir)
  const envDirs = environmentDirs(tfDir)
  const varFiles: VarFile[] = [...(await readVarFiles(tfDir, tfDir))]
  for (const d of envDirs) varFiles.push(...(await readVarFiles(d, tfDir)))
  if (varFiles.length === 0) {
    throw new DrError('prerequisites', `No terraform.tfvars found in ${tfDir} or its environments.`, 'Pass --tf-dir pointing at your Terraform repo (see docs/configuration.md).')
  }
  // First definition wins: the top-level files, then each environment's in alphabetical order.
  const vars = new Map<string, { value: unknown; file: string }>()
  for (const f of varFiles) for (const [k, v] of Object.entries(f.vars)) if (!vars.has(k)) vars.set(k, { value: v, file: relative(tfDir, f.file) })
  const files = varFiles.map((f) => relative(tfDir, f.file))
  const r = new Reader(vars, files)

  const nodes = readNodes(r)
  const environments: Environment[] = []
  for (const dir of envDirs) environments.push(await readEnvironment(dir, tfDir))

  const cfg: Config = {
    tfDir,
    files,
    nodes,
    backupStorage: r.str('backup_storage', 'local'),
    guestStorage: r.optStr('guest_storage'),
    minio: r.has('minio_ip') ? readMinio(r, environments) : undefined,
    monitoring: r.has('monitoring_vmid') ? readMonitoring(r) : undefined,
    environments,
    vars,
  }
  return cfg
}

export function requireMinio(cfg: Config): MinioConfig {
  if (!cfg.minio) throw new DrError('prerequisites', `No MinIO settings: minio_ip is not set in ${cfg.files.join(', ')}.`, 'See docs/configuration.md for the variables homelab-dr reads.')
  return cfg.minio
}

export function requireMonitoring(cfg: Config): MonitoringConfig {
  if (!cfg.monitoring) throw new DrError('prerequisites', `No monitoring settings: monitoring_vmid is not set in ${cfg.files.join(', ')}.`, 'See docs/configuration.md for the variables homelab-dr reads.')
  return cfg.monitoring
}

export function findEnvironment(cfg: Config, name: string | undefined): Environment {
  const names = cfg.environments.map((e) => e.name)
  if (!name) throw new DrError('usage', `Missing --env NAME (one of: ${names.join(', ') || 'none found'}).`)
  if (!ENV_NAME.test(name)) throw new DrError('usage', `Invalid environment name ${JSON.stringify(name)}: use lower-case letters, digits, - and _.`)
  const env = cfg.environments.find((e) => e.name === name)
  if (!env) throw new DrError('usage', `Unknown environment '${name}'. Known: ${names.join(', ') || 'none'} (folders under ${join(cfg.tfDir, 'environments')}).`)
  return env
}

export function findNode(cfg: Config, name: string | undefined): NodeTarget {
  const first = cfg.nodes[0]
  if (!name) {
    if (!first) throw new DrError('prerequisites', 'No Proxmox node configured.')
    return first
  }
  const node = cfg.nodes.find((n) => n.name === name)
  if (!node) throw new DrError('usage', `Unknown node '${name}'. Known: ${cfg.nodes.map((n) => n.name).join(', ')}.`)
  return node
}

// ---- reading ----

function loadDotenv(tfDir: string): void {
  // .env beside the repo, then in the current folder; real environment variables win over both.
  for (const path of [join(tfDir, '.env'), resolve('.env')]) if (existsSync(path)) dotenv({ path, quiet: true, override: false })
}

/** Environments: folders under environments/ (or, failing that, top-level folders) with .tf files. */
function environmentDirs(tfDir: string): string[] {
  const base = existsSync(join(tfDir, 'environments')) ? join(tfDir, 'environments') : tfDir
  return readdirSync(base, { withFileTypes: true })
    .filter((d) => d.isDirectory() && !d.name.startsWith('.') && ENV_NAME.test(d.name))
    .map((d) => join(base, d.name))
    .filter((d) => readdirSync(d).some((n) => n.endsWith('.tf')))
    .sort()
}

async function readEnvironment(dir: string, tfDir: string): Promise<Environment> {
  const name = dir.split('/').at(-1)!
  const backend = await readBackend(dir, tfDir)
  const env: Environment = { name, dir, backend, workspaceKeyPrefix: 'env:' }
  if (backend?.type === 's3') {
    const s = backend.settings
    const where = relative(tfDir, backend.file)
    const bucket = s.bucket
    const key = s.key
    if (typeof bucket !== 'string' || !bucket) throw new DrError('prerequisites', `The s3 backend in ${where} has no bucket.`)
    if (typeof key !== 'string' || !key) throw new DrError('prerequisites', `The s3 backend in ${where} has no key.`)
    env.bucket = bucket
    env.key = key
    if (typeof s.workspace_key_prefix === 'string') env.workspaceKeyPrefix = s.workspace_key_prefix
    const endpoints = s.endpoints as Record<string, unknown> | undefined
    const endpoint = endpoints?.s3 ?? s.endpoint
    if (typeof endpoint === 'string') env.endpoint = endpoint
  }
  return env
}

/** Typed access to the variables, with errors that name the key and the files searched. */
class Reader {
  constructor(
    private readonly vars: Map<string, { value: unknown; file: string }>,
    private readonly files: string[],
  ) {}

  /** The tfvars name to read for a key: HDR_VARS_MAP="minio_ip=storage_ip,…" renames. */
  private name(key: string): string {
    const map = process.env.HDR_VARS_MAP ?? ''
    for (const pair of map.split(',')) {
      const [k, v] = pair.split('=').map((s) => s.trim())
      if (k === key && v) return v
    }
    return key
  }

  private raw(key: string): { value: unknown; where: string } | undefined {
    const envName = `HDR_${key.toUpperCase()}` // .env / environment override
    const fromEnv = process.env[envName]
    if (fromEnv !== undefined && fromEnv !== '') return { value: fromEnv, where: envName }
    const v = this.vars.get(this.name(key))
    return v ? { value: v.value, where: v.file } : undefined
  }

  has(key: string): boolean {
    return this.raw(key) !== undefined
  }

  missing(key: string, what: string): DrError {
    const name = this.name(key)
    return new DrError('prerequisites', `Missing ${what}: variable '${name}' is not set (searched ${this.files.join(', ')}).`, `Add ${name} to terraform.tfvars, or map your own variable name with HDR_VARS_MAP (docs/configuration.md).`)
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

  value(key: string): { value: unknown; where: string } | undefined {
    return this.raw(key)
  }
}

const isHost = (s: string) => /^[A-Za-z0-9][A-Za-z0-9.:-]*$/.test(s) && s.length <= 253

function readNodes(r: Reader): NodeTarget[] {
  const map = r.value('proxmox_nodes')
  if (map) {
    if (typeof map.value !== 'object' || map.value === null || Array.isArray(map.value)) throw r.invalid('proxmox_nodes', map.where, 'expected a map of node name to { host, port, user }')
    const nodes: NodeTarget[] = []
    for (const [name, v] of Object.entries(map.value as Record<string, unknown>)) {
      const o = (v ?? {}) as Record<string, unknown>
      const host = o.host ?? o.ip
      const port = o.port ?? 22
      const user = o.user ?? 'root'
      if (!/^[A-Za-z0-9][A-Za-z0-9-]*$/.test(name)) throw r.invalid('proxmox_nodes', map.where, `node name ${JSON.stringify(name)} is not a host name`)
      if (typeof host !== 'string' || !isHost(host)) throw r.invalid('proxmox_nodes', map.where, `node '${name}' needs host = "<ip or name>"`)
      if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) throw r.invalid('proxmox_nodes', map.where, `node '${name}' port must be 1-65535`)
      if (typeof user !== 'string' || !/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(user)) throw r.invalid('proxmox_nodes', map.where, `node '${name}' user is not a user name`)
      nodes.push({ name, host, port, user })
    }
    if (nodes.length === 0) throw r.invalid('proxmox_nodes', map.where, 'no node listed')
    return nodes
  }
  // The common single-node layout: proxmox_node + proxmox_host (or the API URL's host).
  const name = r.str('proxmox_node', 'pve')
  let host = r.optStr('proxmox_host')
  const url = r.optStr('proxmox_api_url') ?? r.optStr('pm_api_url')
  if (!host && url) host = /^https?:\/\/\[?([^\]/:]+)/.exec(url)?.[1]
  if (!host) throw r.missing('proxmox_nodes', 'the Proxmox node address (proxmox_nodes, proxmox_host or proxmox_api_url)')
  if (!isHost(host)) throw r.invalid('proxmox_host', 'tfvars', `not a host: ${JSON.stringify(host)}`)
  return [{ name, host, port: r.int('proxmox_ssh_port', 1, 65535, 22), user: r.str('proxmox_ssh_user', 'root') }]
}

function readMinio(r: Reader, envs: Environment[]): MinioConfig {
  const ip = r.ip('minio_ip')
  const port = r.int('minio_port', 1, 65535, 9000)
  const accessKey = process.env.AWS_ACCESS_KEY_ID || r.str('minio_root_user')
  const secretKey = process.env.AWS_SECRET_ACCESS_KEY || r.str('minio_root_password')
  registerSecret(secretKey)
  const endpoint = envs.find((e) => e.endpoint)?.endpoint ?? `http://${ip}:${port}`
  return {
    ctid: r.int('minio_ctid', 100, 999_999_999),
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

