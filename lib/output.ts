// Everything a user reads goes through here, so secrets are redacted in one place and
// `--json` keeps stdout for the JSON document alone (human lines then go to stderr).
//
// Text from outside (node output, backup notes, hostnames, S3 version ids) may carry control
// characters: lines printed are cleaned of them (escape sequences removed, other controls shown as
// `?`), and documents (--json, reports) are cleaned string by string before they are serialised.
// Secrets are redacted the same way: in each string before serialising (so a secret with `"` or `\`
// cannot survive as its JSON-escaped form), then in the text, in their plain, JSON-escaped,
// URL-encoded and shell-quoted forms.

const secrets = new Set<string>()
let jsonMode = false

/** Remember a value that must never be printed (passwords, secret keys). */
export function registerSecret(value: string | undefined): void {
  if (value && value.length >= 4) secrets.add(value)
}

/** The forms a secret can take in text we print: as is, JSON-escaped, URL-encoded, shell-quoted. */
function forms(s: string): string[] {
  const all = new Set([s, JSON.stringify(s).slice(1, -1), encodeURIComponent(s), encodeURI(s), s.replace(/'/g, `'\\''`)])
  return [...all].filter((f) => f.length >= 4).sort((a, b) => b.length - a.length)
}

export function redact(text: string): string {
  let out = text
  for (const s of secrets) for (const f of forms(s)) out = out.split(f).join('***')
  return out
}

/** Escape sequences (CSI, OSC, other ESC-x), then any other C0/C1 control except newline and tab. */
const ESCAPES = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]|\x9b[0-?]*[ -/]*[@-~]/g
const CONTROLS = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]/g

/** Text safe to print on a terminal: escape sequences removed, other control characters shown as `?`. */
export function cleanText(text: string): string {
  return text.replace(ESCAPES, '').replace(CONTROLS, '?')
}

/** A copy of a value for a document: every string (keys too) cleaned and redacted. */
export function safeValue(value: unknown): unknown {
  if (typeof value === 'string') return redact(cleanText(value))
  if (Array.isArray(value)) return value.map(safeValue)
  if (value instanceof Date) return value.toISOString()
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [redact(cleanText(k)), safeValue(v)]))
  }
  return value
}

/** A document as JSON text: cleaned and redacted before serialising, and the text redacted again. */
export function serialise(value: unknown): string {
  return redact(JSON.stringify(safeValue(value), null, 2))
}

export function setJsonMode(on: boolean): void {
  jsonMode = on
}

export function isJsonMode(): boolean {
  return jsonMode
}

/** A line for the human reader. */
export function say(line = ''): void {
  const stream = jsonMode ? process.stderr : process.stdout
  stream.write(redact(cleanText(line)) + '\n')
}

/** A warning or error line: always stderr. */
export function warn(line: string): void {
  process.stderr.write(redact(cleanText(line)) + '\n')
}

/** The machine-readable document: the only thing on stdout in --json mode. */
export function printJson(value: unknown): void {
  process.stdout.write(serialise(value) + '\n')
}

export const mark = { ok: '✓', fail: '✗', warn: '!', skip: '-', dry: '[dry-run]' } as const
