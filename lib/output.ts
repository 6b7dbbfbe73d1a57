// Everything a user reads goes through here, so secrets are redacted in one place and
// `--json` keeps stdout for the JSON document alone (human lines then go to stderr).

const secrets = new Set<string>()
let jsonMode = false

/** Remember a value that must never be printed (passwords, secret keys). */
export function registerSecret(value: string | undefined): void {
  if (value && value.length >= 4) secrets.add(value)
}

export function redact(text: string): string {
  let out = text
  for (const s of secrets) out = out.split(s).join('***')
  return out
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
  stream.write(redact(line) + '\n')
}

/** A warning or error line: always stderr. */
export function warn(line: string): void {
  process.stderr.write(redact(line) + '\n')
}

/** The machine-readable document: the only thing on stdout in --json mode. */
export function printJson(value: unknown): void {
  process.stdout.write(redact(JSON.stringify(value, null, 2)) + '\n')
}

export const mark = { ok: '✓', fail: '✗', warn: '!', skip: '-', dry: '[dry-run]' } as const
