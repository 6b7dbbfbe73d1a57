// Measuring a command: wall time and peak RSS (GNU time), repeated; medians, not single runs.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface Run {
  ms: number
  rssKb: number
  code: number
  stdout: string
  stderr: string
}

const scratch = mkdtempSync(join(tmpdir(), 'hdr-bench-'))

/** Runs a command once under /usr/bin/time: wall ms, peak RSS of the process tree's largest. */
export function timed(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string } = {}): Run {
  const out = join(scratch, 'time.txt')
  const t0 = performance.now()
  const r = spawnSync('/usr/bin/time', ['-f', '%M', '-o', out, cmd, ...args], { encoding: 'utf8', env: opts.env ?? process.env, cwd: opts.cwd, input: opts.input ?? '', maxBuffer: 256 * 1024 * 1024 })
  const ms = performance.now() - t0
  const rssKb = Number(readFileSync(out, 'utf8').trim().split('\n').at(-1))
  return { ms, rssKb, code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr }
}

export interface Stat {
  median: number
  min: number
  max: number
  n: number
}

export function stat(values: number[]): Stat {
  const s = [...values].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
  return { median, min: s[0]!, max: s.at(-1)!, n: s.length }
}

export interface Row {
  scenario: string
  metric: string
  unit: string
  stat: Stat
  goal?: string
  met?: boolean
  note?: string
}
