// Command-line parsing: node:util parseArgs in strict mode, and --help generated from the same spec.
// Why not minimist or zx's argv: measured, they accept the typo `--dryrun` and swallow `101` after
// `--dry-run` unless every option is declared; parseArgs rejects unknown options and knows booleans.
import { parseArgs } from 'node:util'
import { EXIT_TABLE, usageError } from './errors.ts'

export interface OptionSpec {
  type: 'boolean' | 'string'
  description: string
  /** Placeholder shown in --help, e.g. 'YYYY-MM-DD'. */
  value?: string
}

export interface PositionalSpec {
  name: string
  description: string
  required: boolean
}

export interface CommandSpec<O extends Record<string, OptionSpec> = Record<string, OptionSpec>> {
  id: string
  summary: string
  /** The manual: a few lines on what the task does, in order. */
  description: string
  positionals: PositionalSpec[]
  options: O
  examples: string[]
}

/** Options every task accepts. */
export const COMMON_OPTIONS = {
  'dry-run': { type: 'boolean', description: 'show the plan and the real facts, change nothing' },
  yes: { type: 'boolean', description: 'answer yes to the confirmation (after reading the plan)' },
  force: { type: 'boolean', description: 'skip the confirmation and override refusable checks' },
  json: { type: 'boolean', description: 'print one JSON report on stdout (human lines go to stderr)' },
  'tf-dir': { type: 'string', value: 'DIR', description: 'your Terraform repo (default $HOMELAB_TF_DIR, else the current folder)' },
  help: { type: 'boolean', description: 'show this help' },
} as const satisfies Record<string, OptionSpec>

type ValueOf<S extends OptionSpec> = S['type'] extends 'boolean' ? boolean : string | undefined
export type Values<O extends Record<string, OptionSpec>> = { [K in keyof O]: ValueOf<O[K]> } & {
  [K in keyof typeof COMMON_OPTIONS]: ValueOf<(typeof COMMON_OPTIONS)[K]>
}

export interface Parsed<O extends Record<string, OptionSpec>> {
  positionals: string[]
  values: Values<O>
}

export function parseCommand<O extends Record<string, OptionSpec>>(spec: CommandSpec<O>, argv: string[]): Parsed<O> {
  const all: Record<string, OptionSpec> = { ...COMMON_OPTIONS, ...spec.options }
  const options = Object.fromEntries(Object.entries(all).map(([name, o]) => [name, { type: o.type }]))
  let parsed
  try {
    parsed = parseArgs({ args: joinDashValues(argv, all), options, strict: true, allowPositionals: true })
  } catch (e) {
    throw usageError(explainParseError(e, Object.keys(all)), `Run with --help to see the options.`)
  }
  const values: Record<string, string | boolean | undefined> = {}
  for (const [name, o] of Object.entries(all)) {
    const v = (parsed.values as Record<string, string | boolean | undefined>)[name]
    values[name] = o.type === 'boolean' ? v === true : (v as string | undefined)
  }
  const max = spec.positionals.length
  if (parsed.positionals.length > max && !values.help) {
    const extra = parsed.positionals.slice(max).join(' ')
    throw usageError(`Unexpected argument: ${extra}.`, 'Run with --help to see the usage.')
  }
  if (!values.help) {
    for (const [i, p] of spec.positionals.entries()) {
      if (p.required && parsed.positionals[i] === undefined) throw usageError(`Missing <${p.name}>: ${p.description}.`, `Usage: ${usageLine(spec)}`)
    }
  }
  return { positionals: parsed.positionals, values: values as Values<O> }
}

/**
 * `--version -Ppm5…` → `--version=-Ppm5…`. parseArgs calls a value that begins with a dash ambiguous,
 * but S3 version IDs (Ceph RGW's among them) may begin with one, and the operator pastes them as
 * listed. A following word that is one of our own options stays an option: `--version --yes` still
 * says the value is missing.
 */
function joinDashValues(argv: string[], all: Record<string, OptionSpec>): string[] {
  const isOption = (word: string) => /^--[\w-]+/.test(word) && word.replace(/^--/, '').split('=')[0]! in all
  const out: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!
    if (word === '--') return [...out, ...argv.slice(i)]
    const next = argv[i + 1]
    const takesValue = word.startsWith('--') && !word.includes('=') && all[word.slice(2)]?.type === 'string'
    if (takesValue && next !== undefined && next.startsWith('-') && next !== '--' && !isOption(next)) {
      out.push(`${word}=${next}`)
      i++
    } else out.push(word)
  }
  return out
}

function explainParseError(e: unknown, known: string[]): string {
  const msg = e instanceof Error ? e.message : String(e)
  const unknown = /Unknown option '(-{1,2}[^']+)'/.exec(msg)?.[1]
  if (unknown) {
    const near = closest(unknown.replace(/^-+/, ''), known)
    return `Unknown option ${unknown}.` + (near ? ` Did you mean --${near}?` : '')
  }
  const needsValue =
    /Option '(?:-\w, )?(--[\w-]+) <value>' argument missing/.exec(msg)?.[1] ??
    /Option '(--[\w-]+)' argument is ambiguous/.exec(msg)?.[1] // followed by another of our options
  if (needsValue) return `Option ${needsValue} needs a value.`
  const noValue = /Option '(--[\w-]+)' does not take an argument/.exec(msg)?.[1]
  if (noValue) return `Option ${noValue} takes no value.`
  return msg.split('\n')[0] ?? msg
}

function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined
  let bestDistance = 3
  for (const c of candidates) {
    const d = distance(word, c)
    if (d < bestDistance) [best, bestDistance] = [c, d]
  }
  return best
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1))
      prev = cur
    }
  }
  return row[b.length]!
}

export function usageLine(spec: CommandSpec): string {
  const pos = spec.positionals.map((p) => (p.required ? `<${p.name}>` : `[${p.name}]`)).join(' ')
  // Run as a single-file bundle (dist/*.mjs), the command is `node <file>`, not npm.
  const bundle = /[^/]+\.mjs$/.exec(process.argv[1] ?? '')?.[0]
  return `${bundle ? `node ${bundle}` : `npm run ${spec.id} --`} ${pos}${pos ? ' ' : ''}[options]`
}

export function helpText(spec: CommandSpec): string {
  const row = (name: string, o: OptionSpec) => `  --${name}${o.value ? ' ' + o.value : ''}`.padEnd(30) + o.description
  const lines = [
    `${spec.id} — ${spec.summary}`,
    '',
    `Usage: ${usageLine(spec)}`,
    '',
    spec.description.trim(),
    '',
  ]
  if (spec.positionals.length) {
    lines.push('Arguments:')
    for (const p of spec.positionals) lines.push(`  ${p.name}`.padEnd(30) + p.description)
    lines.push('')
  }
  lines.push('Options:')
  for (const [name, o] of Object.entries(spec.options)) lines.push(row(name, o))
  for (const [name, o] of Object.entries(COMMON_OPTIONS)) lines.push(row(name, o))
  lines.push('', 'Examples:', ...spec.examples.map((e) => `  ${e}`), '', 'Exit codes:')
  for (const [code, meaning] of EXIT_TABLE) lines.push(`  ${code}  ${meaning}`)
  return lines.join('\n')
}
