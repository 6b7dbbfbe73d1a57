// Reads Terraform variable files and backend blocks with HashiCorp's own HCL parser (@cdktf/hcl2json,
// Go compiled to wasm). Measured: hcl-to-json (HCL1) passed 17 of 28 tfvars cases and accepts junk;
// hcl2json matched Terraform on real homelab files and reports file:line:col. Also the folder's .tf
// files as data: variable defaults, locals, provider blocks, the backend block, local module calls.
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { basename, join, relative, resolve } from 'node:path'
import { DrError } from './errors.ts'

export type Vars = Record<string, unknown>

export interface VarFile {
  file: string
  vars: Vars
}

export interface Backend {
  type: string
  settings: Record<string, unknown>
  /** The file that declares it. */
  file: string
}

async function hclParse(file: string, text: string): Promise<Record<string, unknown>> {
  // The parser is Go compiled to a large wasm module. Left to itself, V8 compiles its hot functions a
  // second time, optimised, on background threads: ~0.6 s of CPU (and ~0.5 s more inside the parse)
  // for a handful of files, taken from the SSH connection and the node commands that follow on a
  // small machine. Baseline (Liftoff) code only: the same parse for less than half the CPU, and
  // nothing left running after it (issue 14; measured in docs/benchmarks.md). Set before the module
  // is compiled; this process runs no other wasm.
  ;(await import('node:v8')).setFlagsFromString('--liftoff-only') // node:v8 costs start-up: loaded here
  const { parse } = await import('@cdktf/hcl2json') // wasm: loaded only when a file is read
  try {
    return (await parse(file, text)) as Record<string, unknown>
  } catch (e) {
    const msg = String(e instanceof Error ? e.message : e)
    // hcl2json says: parse config: [file:2,5-6: Invalid expression; Expected …]
    const m = /\[([^\]]+?):(\d+),(\d+)(?:-\d+)?: ([^\]]+)\]/.exec(msg)
    const where = m ? `${m[1]}:${m[2]}:${m[3]}` : file
    throw new DrError('prerequisites', `Cannot parse ${where}: ${m ? m[4]!.trim() : msg}`, 'Fix the file (terraform validate shows the same error), then run again.')
  }
}

/** One tfvars file (HCL or .tfvars.json). */
export async function parseVarFile(path: string, displayRoot = process.cwd()): Promise<Vars> {
  const text = readFileSync(path, 'utf8')
  const shown = relative(displayRoot, path) || path
  if (path.endsWith('.json')) {
    try {
      const v = JSON.parse(text) as unknown
      if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('the top level must be an object')
      return v as Vars
    } catch (e) {
      throw new DrError('prerequisites', `Cannot parse ${shown}: ${e instanceof Error ? e.message : e}`)
    }
  }
  return hclParse(shown, text)
}

/** The variable files Terraform itself loads from a folder, in its order. */
export function varFilesIn(dir: string): string[] {
  if (!existsSync(dir)) return []
  const names = readdirSync(dir)
  const auto = names.filter((n) => n.endsWith('.auto.tfvars') || n.endsWith('.auto.tfvars.json')).sort()
  return ['terraform.tfvars', 'terraform.tfvars.json', ...auto].filter((n) => names.includes(n)).map((n) => join(dir, n))
}

export async function readVarFiles(dir: string, displayRoot?: string): Promise<VarFile[]> {
  const out: VarFile[] = []
  for (const file of varFilesIn(dir)) out.push({ file, vars: await parseVarFile(file, displayRoot) })
  return out
}

/** The backend block of a Terraform folder, ignoring override files (those are ours or the operator's). */
export async function readBackend(dir: string, displayRoot = process.cwd()): Promise<Backend | undefined> {
  const files = readdirSync(dir).filter((n) => n.endsWith('.tf') && !isOverride(n)).sort()
  for (const name of files) {
    const file = join(dir, name)
    const doc = await hclParse(relative(displayRoot, file) || file, readFileSync(file, 'utf8'))
    for (const block of asArray(doc.terraform)) {
      const backend = (block as Record<string, unknown>).backend as Record<string, unknown[]> | undefined
      if (!backend) continue
      const [type, bodies] = Object.entries(backend)[0] ?? []
      if (type) return { type, settings: (asArray(bodies)[0] ?? {}) as Record<string, unknown>, file }
    }
  }
  return undefined
}

export function isOverride(name: string): boolean {
  const b = basename(name)
  return b === 'override.tf' || b.endsWith('_override.tf')
}


// ---- a Terraform folder's configuration (variables, providers, backend, module calls) ----

/** Where a value was written: a file relative to the repo and its line, or an environment variable. */
export interface Where {
  file: string
  line?: number
}
export const at = (w: Where): string => (w.line ? `${w.file}:${w.line}` : w.file)

export interface Declared<T = unknown> extends Where {
  value: T
}

export interface TfFolder {
  dir: string
  /** The .tf files read (override files excluded). */
  files: string[]
  /** `variable "x" { default = … }`: only those with a non-null default are in `defaults`. */
  declared: Map<string, Where>
  defaults: Map<string, Declared>
  /** Literal `locals { … }` values, for resolving `local.x`. */
  locals: Map<string, Declared>
  /** `provider "<name>" { … }` blocks (first body of each). */
  providers: Array<Declared<Record<string, unknown>> & { name: string }>
  backend: (Backend & { line?: number }) | undefined
  /** `module "x" { source = "./y" }`: local sources, resolved to folders. */
  moduleDirs: string[]
  /** `node_name` / `target_node` in resources (bpg / Telmate), for the node's name. */
  nodeNames: Declared[]
}

/** Reads the .tf files of one folder with HashiCorp's parser. */
export async function readFolder(dir: string, displayRoot: string): Promise<TfFolder> {
  const out: TfFolder = { dir, files: [], declared: new Map(), defaults: new Map(), locals: new Map(), providers: [], backend: undefined, moduleDirs: [], nodeNames: [] }
  const names = readdirSync(dir).filter((n) => n.endsWith('.tf') && !isOverride(n)).sort()
  for (const name of names) {
    const file = join(dir, name)
    const shown = relative(displayRoot, file) || file
    const text = readFileSync(file, 'utf8')
    const doc = await hclParse(shown, text)
    out.files.push(shown)
    for (const [vname, bodies] of Object.entries((doc.variable ?? {}) as Record<string, unknown[]>)) {
      const line = lineOf(text, new RegExp(`^\\s*variable\\s+"${esc(vname)}"`))
      out.declared.set(vname, { file: shown, line })
      const body = (asArray(bodies)[0] ?? {}) as Record<string, unknown>
      if (body.default !== undefined && body.default !== null) out.defaults.set(vname, { value: body.default, file: shown, line })
    }
    for (const block of asArray(doc.locals)) {
      for (const [k, v] of Object.entries(block as Record<string, unknown>)) out.locals.set(k, { value: v, file: shown, line: lineOf(text, new RegExp(`^\\s*${esc(k)}\\s*=`)) })
    }
    for (const [pname, bodies] of Object.entries((doc.provider ?? {}) as Record<string, unknown[]>)) {
      const body = (asArray(bodies)[0] ?? {}) as Record<string, unknown>
      out.providers.push({ name: pname, value: body, file: shown, line: lineOf(text, new RegExp(`^\\s*provider\\s+"${esc(pname)}"`)) })
    }
    for (const block of asArray(doc.terraform)) {
      const backend = (block as Record<string, unknown>).backend as Record<string, unknown[]> | undefined
      const [type, bodies] = Object.entries(backend ?? {})[0] ?? []
      if (type && !out.backend) out.backend = { type, settings: (asArray(bodies)[0] ?? {}) as Record<string, unknown>, file, line: lineOf(text, new RegExp(`^\\s*backend\\s+"${esc(type)}"`)) }
    }
    for (const bodies of Object.values((doc.module ?? {}) as Record<string, unknown[]>)) {
      const source = (asArray(bodies)[0] as Record<string, unknown> | undefined)?.source
      if (typeof source === 'string' && (source.startsWith('./') || source.startsWith('../'))) out.moduleDirs.push(resolve(dir, source))
    }
    for (const types of Object.values((doc.resource ?? {}) as Record<string, Record<string, unknown[]>>)) {
      for (const bodies of Object.values(types)) {
        for (const body of asArray(bodies) as Array<Record<string, unknown>>) {
          for (const k of ['node_name', 'target_node']) {
            if (body[k] !== undefined) out.nodeNames.push({ value: body[k], file: shown, line: lineOf(text, new RegExp(`^\\s*${k}\\s*=`)) })
          }
        }
      }
    }
  }
  return out
}

/** A -backend-config file (backend.hcl, *.tfbackend): top-level attributes. */
export async function parseBackendFile(path: string, displayRoot: string): Promise<Declared<Record<string, unknown>>> {
  const shown = relative(displayRoot, path) || path
  return { value: await hclParse(shown, readFileSync(path, 'utf8')), file: shown }
}

/** The 1-based line of the first match, or undefined. */
export function lineOf(text: string, re: RegExp): number | undefined {
  const lines = text.split('\n')
  const i = lines.findIndex((l) => re.test(l))
  return i < 0 ? undefined : i + 1
}

/** The line of `name =` in a variable file (for file:line in the doctor). */
export function attributeLine(path: string, name: string): number | undefined {
  if (path.endsWith('.json')) return lineOf(readFileSync(path, 'utf8'), new RegExp(`^\\s*"${esc(name)}"\\s*:`))
  return lineOf(readFileSync(path, 'utf8'), new RegExp(`^\\s*"?${esc(name)}"?\\s*=`))
}

/** A TF_VAR_ value as Terraform reads it: HCL for lists, maps and objects, else the string itself. */
export async function parseEnvVar(name: string, text: string): Promise<unknown> {
  const t = text.trim()
  if (!t.startsWith('[') && !t.startsWith('{')) return text
  const doc = await hclParse(`TF_VAR_${name}`, `v = ${t}\n`)
  return doc.v
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

const asArray = (v: unknown): unknown[] => (Array.isArray(v) ? v : v === undefined ? [] : [v])
