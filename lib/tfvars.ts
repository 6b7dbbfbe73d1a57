// Reads Terraform variable files and backend blocks with HashiCorp's own HCL parser (@cdktf/hcl2json,
// Go compiled to wasm). Measured: hcl-to-json (HCL1) passed 17 of 28 tfvars cases and accepts junk;
// hcl2json matched Terraform on real homelab files and reports file:line:col.
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { basename, join, relative } from 'node:path'
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

const asArray = (v: unknown): unknown[] => (Array.isArray(v) ? v : v === undefined ? [] : [v])
