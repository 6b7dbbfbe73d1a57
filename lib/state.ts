// Terraform state files (format version 4, internal/states/statefile/version4.go): parse and validate,
// list resource instance addresses, diff two states, roll an old state forward (serial above the
// current one, lineage kept), the local mirror that `fallback` uses when MinIO is gone, and the
// imports.tf skeleton for when the state is lost (EC-5). Everything but the mirror and the
// configuration reader is a pure function of its input.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { homedir } from 'node:os'
import { join, posix } from 'node:path'
import { writePrivate } from './files.ts'
import { DrError } from './errors.ts'

export interface StateInstance {
  index_key?: string | number
  attributes?: Record<string, unknown>
  [k: string]: unknown
}

export interface StateResource {
  module?: string
  mode: 'managed' | 'data'
  type: string
  name: string
  provider?: string
  instances: StateInstance[]
  [k: string]: unknown
}

export interface TfState {
  version: number
  terraform_version: string
  serial: number
  lineage: string
  outputs: Record<string, unknown>
  resources: StateResource[]
  [k: string]: unknown
}

export type ParseResult = { ok: true; state: TfState } | { ok: false; reason: string }

/** Validates a state file's text: JSON, version 4, a serial, a lineage, a resources list. */
export function tryParseState(text: string): ParseResult {
  if (text.trim() === '') return { ok: false, reason: 'empty file' }
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (e) {
    return { ok: false, reason: `not JSON (${(e as Error).message})` }
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return { ok: false, reason: 'not a JSON object' }
  const s = doc as Record<string, unknown>
  if (s.version !== 4) return { ok: false, reason: `state format version ${JSON.stringify(s.version)}, expected 4` }
  if (typeof s.serial !== 'number' || !Number.isInteger(s.serial) || s.serial < 0) return { ok: false, reason: 'no valid serial' }
  if (typeof s.lineage !== 'string' || s.lineage === '') return { ok: false, reason: 'no lineage' }
  const resources = s.resources ?? []
  if (!Array.isArray(resources)) return { ok: false, reason: 'resources is not a list' }
  for (const r of resources as unknown[]) {
    const o = r as Record<string, unknown> | null
    if (!o || typeof o.type !== 'string' || typeof o.name !== 'string' || !Array.isArray(o.instances)) return { ok: false, reason: 'a resource lacks type, name or instances' }
  }
  return { ok: true, state: { ...s, resources, outputs: (s.outputs ?? {}) as Record<string, unknown> } as TfState }
}

/** Like tryParseState, but an invalid state is a DrError naming where it came from. */
export function parseState(text: string, origin: string): TfState {
  const r = tryParseState(text)
  if (!r.ok) throw new DrError('prerequisites', `${origin} is not a valid Terraform state: ${r.reason}.`)
  return r.state
}

/** `module.a.terraform_data.x["k"]`, one per resource instance, as Terraform prints them. */
export function instanceAddresses(state: TfState): string[] {
  return [...instancesByAddress(state).keys()].sort()
}

function instancesByAddress(state: TfState): Map<string, StateInstance> {
  const out = new Map<string, StateInstance>()
  for (const r of state.resources) {
    const base = `${r.module ? `${r.module}.` : ''}${r.mode === 'data' ? 'data.' : ''}${r.type}.${r.name}`
    for (const i of r.instances) {
      const k = i.index_key
      out.set(base + (k === undefined ? '' : typeof k === 'number' ? `[${k}]` : `[${JSON.stringify(k)}]`), i)
    }
  }
  return out
}

export interface StateDiff {
  added: string[]
  removed: string[]
  changed: string[]
  serial: [from: number, to: number]
  lineage: [from: string, to: string]
}

/** What changes when `to` replaces `from`, by resource instance address. */
export function diffStates(from: TfState, to: TfState): StateDiff {
  const a = instancesByAddress(from)
  const b = instancesByAddress(to)
  const added = [...b.keys()].filter((k) => !a.has(k)).sort()
  const removed = [...a.keys()].filter((k) => !b.has(k)).sort()
  const changed = [...b.keys()].filter((k) => a.has(k) && stable(a.get(k)) !== stable(b.get(k))).sort()
  return { added, removed, changed, serial: [from.serial, to.serial], lineage: [from.lineage, to.lineage] }
}

/** Lines for the operator: `+ addr`, `- addr`, `~ addr`, serial and lineage. */
export function describeDiff(d: StateDiff, newSerial: number): string[] {
  const lines = [
    ...d.added.map((a) => `+ ${a}  (back in the state)`),
    ...d.removed.map((a) => `- ${a}  (no longer in the state)`),
    ...d.changed.map((a) => `~ ${a}  (attributes differ)`),
  ]
  if (lines.length === 0) lines.push('= same resources and attributes')
  lines.push(`serial: ${d.serial[0]} now; the restored copy is serial ${d.serial[1]}, written as ${newSerial}`)
  lines.push(d.lineage[0] === d.lineage[1] ? `lineage: ${d.lineage[1]} (unchanged)` : `lineage: ${d.lineage[0]} -> ${d.lineage[1]} (CHANGES: a different state history)`)
  return lines
}

function stable(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([p], [q]) => p.localeCompare(q))) : x))
}

/**
 * The old state written as a new current one: same content and lineage, serial set above both
 * serials, so that a client holding the current serial cannot silently overwrite it. Terraform's
 * own layout: 2-space JSON and a final newline.
 */
export function rollForward(target: TfState, currentSerial: number | undefined): { text: string; serial: number } {
  const serial = Math.max(target.serial, currentSerial ?? 0) + 1
  return { text: JSON.stringify({ ...target, serial }, null, 2) + '\n', serial }
}

/** The backend's object key for a workspace (backend_state.go path()). */
export function stateKey(key: string, workspace: string | undefined, prefix = 'env:'): string {
  return !workspace || workspace === 'default' ? key : posix.join(prefix, workspace, key)
}

export const lockKey = (stateObjectKey: string) => `${stateObjectKey}.tflock`

// node:crypto is required on first use: every task would pay its load at start-up, --help included
const requireHere = createRequire(import.meta.url)
const crypto = () => requireHere('node:crypto') as typeof import('node:crypto')
export const sha256 = (text: string) => crypto().createHash('sha256').update(text).digest('hex')

// ---- the local mirror -------------------------------------------------------------------------

/** Where state copies live: $HDR_STATE_DIR, else $XDG_DATA_HOME or ~/.local/share, /homelab-dr/state. */
export function stateDir(): string {
  if (process.env.HDR_STATE_DIR) return process.env.HDR_STATE_DIR
  const data = process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share')
  return join(data, 'homelab-dr', 'state')
}

/** The mirror folder of one environment (and workspace). */
export function mirrorDir(env: string, workspace?: string): string {
  return !workspace || workspace === 'default' ? join(stateDir(), env) : join(stateDir(), env, 'workspaces', workspace)
}

export interface LocalCopy {
  file: string
  state: TfState
  mtime: Date
}

/**
 * Writes a state into the mirror as <serial>.tfstate (mode 0600, folders 0700). A file of that
 * name with other content is never overwritten: the new one gets a short hash suffix.
 * Returns the file and whether it was new.
 */
export function mirrorState(env: string, workspace: string | undefined, text: string, state: TfState): { file: string; created: boolean } {
  const dir = mirrorDir(env, workspace)
  let file = join(dir, `${state.serial}.tfstate`)
  if (existsSync(file)) {
    if (readFileSync(file, 'utf8') === text) return { file, created: false }
    file = join(dir, `${state.serial}.${sha256(text).slice(0, 8)}.tfstate`)
    if (existsSync(file)) return { file, created: false }
  }
  writePrivate(file, text)
  return { file, created: true }
}

/** Every valid copy in the mirror, highest serial first (newest file first on a tie). */
export function localCopies(env: string, workspace?: string, extra: string[] = []): LocalCopy[] {
  const dir = mirrorDir(env, workspace)
  const files = existsSync(dir) ? readdirSync(dir).filter((n) => n.endsWith('.tfstate')).map((n) => join(dir, n)) : []
  const out: LocalCopy[] = []
  for (const file of [...files, ...extra.filter((f) => existsSync(f))]) {
    const r = tryParseState(readFileSync(file, 'utf8'))
    if (r.ok) out.push({ file, state: r.state, mtime: statSync(file).mtime })
  }
  return out.sort((a, b) => b.state.serial - a.state.serial || b.mtime.getTime() - a.mtime.getTime())
}

// ---- state lost (EC-5) --------------------------------------------------------------------------

export interface ConfigResource {
  address: string
  /** count / for_each: the operator must add one import block per instance. */
  repeated?: 'count' | 'for_each'
  file: string
}

/** Managed resources declared in one parsed .tf document (hcl2json shape: resource.type.name[]). */
export function resourcesInDoc(doc: Record<string, unknown>, file: string, modulePrefix = ''): ConfigResource[] {
  const out: ConfigResource[] = []
  const resource = doc.resource as Record<string, Record<string, unknown[]>> | undefined
  for (const [type, byName] of Object.entries(resource ?? {})) {
    for (const [name, bodies] of Object.entries(byName ?? {})) {
      const body = (Array.isArray(bodies) ? bodies[0] : bodies) as Record<string, unknown> | undefined
      const repeated = body && 'count' in body ? 'count' : body && 'for_each' in body ? 'for_each' : undefined
      out.push({ address: `${modulePrefix}${type}.${name}`, file, ...(repeated ? { repeated } : {}) })
    }
  }
  return out
}

/** The resources of a Terraform folder's configuration (override files included, local modules followed). */
export async function configResources(dir: string, modulePrefix = '', depth = 0): Promise<ConfigResource[]> {
  const { parse } = await import('@cdktf/hcl2json')
  const out: ConfigResource[] = []
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.tf')).sort()) {
    const file = join(dir, name)
    const doc = (await parse(name, readFileSync(file, 'utf8'))) as Record<string, unknown>
    out.push(...resourcesInDoc(doc, file, modulePrefix))
    const modules = doc.module as Record<string, unknown[]> | undefined
    for (const [mod, bodies] of Object.entries(modules ?? {})) {
      const src = ((Array.isArray(bodies) ? bodies[0] : bodies) as Record<string, unknown> | undefined)?.source
      if (typeof src === 'string' && /^\.\.?\//.test(src) && depth < 5) out.push(...(await configResources(join(dir, src), `${modulePrefix}module.${mod}.`, depth + 1)))
    }
  }
  return out
}

/** imports.tf: one import block per resource, ids left for the operator (terraform import docs). */
export function importsSkeleton(env: string, resources: ConfigResource[], when = new Date()): string {
  const lines = [
    `# imports.tf for environment '${env}', generated by homelab-dr restore:state on ${when.toISOString()}.`,
    '# The Terraform state of this environment is lost (no S3 copy, no local copy). To rebuild it from the',
    '# resources that still exist: fill every id below (for Proxmox guests usually "<node>/<type>/<vmid>",',
    '# see each provider\'s import docs), copy this file into the environment folder, then run:',
    '#   terraform init && terraform plan     (check: only imports, nothing to create or destroy)',
    '#   terraform apply                      (writes the new state), then delete imports.tf',
    '',
  ]
  if (resources.length === 0) lines.push('# No resource blocks were found in the configuration.')
  for (const r of resources) {
    if (r.repeated) lines.push(`# ${r.address} uses ${r.repeated}: write one block per instance, e.g. to = ${r.address}${r.repeated === 'count' ? '[0]' : '["key"]'}`)
    lines.push('import {', `  to = ${r.address}${r.repeated === 'count' ? '[0]' : r.repeated === 'for_each' ? '["key"]' : ''}`, '  id = "" # TODO: the real id of this resource', '}', '')
  }
  return lines.join('\n')
}
