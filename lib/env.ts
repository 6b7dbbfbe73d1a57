// Environment variables homelab-dr reads as numbers, checked (HDR_BOOT_TIMEOUT=2m is a clear usage
// error, not endless retries), and test hooks kept out of shipped runs.
//
// Test hooks (HDR_NOW: "now" for age checks) are honoured only in the lab (HDR_LAB_DIR set: the lab's
// marker, set by labEnv) and never in a bundle (globalThis.__HDR_ENTRY, set by the bundle's banner):
// an operator's stray HDR_NOW is ignored with a warning, never silently obeyed.
import { usageError } from './errors.ts'
import { mark, warn } from './output.ts'

/** A whole number of seconds from the environment, or the default; out of range or not a number: exit 2. */
export function envSeconds(name: string, fallback: number, min = 1, max = 86_400): number {
  const raw = process.env[name]
  if (raw === undefined || raw.trim() === '') return fallback
  if (!/^\d+$/.test(raw.trim()) || Number(raw) < min || Number(raw) > max) {
    throw usageError(`${name}=${JSON.stringify(raw)}: not a whole number of seconds from ${min} to ${max}.`, `Set it to a number of seconds, e.g. ${name}=${fallback}, or unset it (default ${fallback}).`)
  }
  return Number(raw)
}

/** True in the lab's test runs from source; false for operators and in every bundle. */
export function testHooksAllowed(): boolean {
  return (globalThis as { __HDR_ENTRY?: string }).__HDR_ENTRY === undefined && Boolean(process.env.HDR_LAB_DIR)
}

/** A test hook's value, only where test hooks are allowed; elsewhere a set hook is ignored with a warning. */
export function testHook(name: string): string | undefined {
  const v = process.env[name]
  if (v === undefined) return undefined
  if (testHooksAllowed()) return v
  warn(`${mark.warn} ${name} is a test hook of the lab: ignored.`)
  return undefined
}
