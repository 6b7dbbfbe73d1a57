// Shared command runner: Proxmox-style option parsing (proxmox/pve-common src/PVE/JSONSchema.pm
// get_options), exit codes, and one calls.log line per command.
import fs from 'node:fs'
import path from 'node:path'
import { pveDir, SimError } from './state.mjs'

let workMs = 0
/** Count time spent on the node's own restore/vzdump/verify work (calls.log work_ms). */
export async function work(fn) {
  const t0 = performance.now()
  try { return await fn() } finally { workMs += performance.now() - t0 }
}

export const out = (s) => process.stdout.write(s.endsWith('\n') ? s : s + '\n')
export const err = (s) => process.stderr.write(s.endsWith('\n') ? s : s + '\n')

/**
 * Run a command's main(argv) → exit code, and log it.
 * A thrown SimError prints its message on stderr and exits with its code.
 */
export async function run(name, main) {
  const argv = process.argv.slice(2)
  let exit = 0
  try {
    exit = (await main(argv)) ?? 0
  } catch (e) {
    if (e instanceof SimError) { if (e.message) err(e.message); exit = e.exit }
    else { err(String(e?.stack ?? e)); exit = 255 }
  }
  try {
    fs.mkdirSync(pveDir, { recursive: true })
    const line = JSON.stringify({ t: new Date().toISOString(), argv: [name, ...argv], cwd: process.cwd(), exit, ms: Math.round(performance.now()) /* since process start */, work_ms: Math.round(workMs) })
    fs.appendFileSync(path.join(pveDir, 'calls.log'), line + '\n')
  } catch {}
  process.exitCode = exit
}

/**
 * Split argv into positionals and options. Boolean-ish options take a value (`--force 1`);
 * `--opt=value` also works. Unknown options are refused like JSONSchema's
 * "400 Parameter verification failed." (pve-common src/PVE/JSONSchema.pm).
 * @param {string[]} argv @param {Record<string,'bool'|'string'|'int'>} spec @param {string} usage
 */
export function parseArgs(argv, spec, usage) {
  const pos = [], opts = {}, errors = []
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? ''
    const m = /^--?([a-z][a-z0-9-]*)(?:=(.*))?$/.exec(a)
    if (!m) { pos.push(a); continue }
    const key = m[1]
    const type = spec[key]
    if (!type) { errors.push(`${key}: property is not defined in schema and the schema does not allow additional properties`); continue }
    let v = m[2]
    if (v === undefined) {
      const next = argv[i + 1]
      if (type === 'bool' && (next === undefined || !/^(0|1|true|false|yes|no|on|off)$/i.test(next))) v = '1'
      else { v = next ?? ''; i++ }
    }
    if (type === 'bool') {
      if (!/^(0|1|true|false|yes|no|on|off)$/i.test(v)) errors.push(`${key}: type check ('boolean') failed - got '${v}'`)
      opts[key] = /^(1|true|yes|on)$/i.test(v)
    } else if (type === 'int') {
      if (!/^-?\d+$/.test(v)) errors.push(`${key}: type check ('integer') failed - got '${v}'`)
      opts[key] = Number(v)
    } else opts[key] = v
  }
  if (errors.length) throw paramError(errors, usage)
  return { pos, opts }
}

export function paramError(errors, usage) {
  return new SimError(`400 Parameter verification failed.\n${errors.join('\n')}\n${usage}`, 255)
}

/** Validate a VMID like pve-common's pve-vmid format. */
export function vmidArg(v, usage, name = 'vmid') {
  if (v === undefined) throw paramError([`${name}: property is missing and it is not optional`], usage)
  if (!/^\d+$/.test(v)) throw paramError([`${name}: type check ('integer') failed - got '${v}'`], usage)
  const n = Number(v)
  if (n < 100 || n > 999999999) throw paramError([`${name}: invalid format - value does not look like a valid VM ID`], usage)
  return n
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
