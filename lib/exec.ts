// The one runner for local programs (ssh, terraform, ping). Each is spawned directly (no shell: the
// argv goes to execve as it is), so nothing is re-parsed by a local shell and no shell start-up file
// (BASH_ENV, ENV) can run; those two are also removed from the child's environment, so a shell the
// child itself starts (ssh's ProxyCommand) does not read them either. A timeout sends SIGTERM, then
// SIGKILL after a grace period: a program that ignores SIGTERM cannot hold the run.

import { createRequire } from 'node:module'
import { constants } from 'node:os'

export interface ExecOptions {
  timeoutMs?: number
  /** After the timeout's SIGTERM, how long before SIGKILL (default 3000 ms). */
  killGraceMs?: number
  input?: string
  cwd?: string
  env?: NodeJS.ProcessEnv
  /** Called with each chunk of stdout as it arrives (progress lines). */
  onStdout?: (chunk: string) => void
}

export interface ExecResult {
  exitCode: number
  stdout: string
  stderr: string
  timedOut: boolean
  ms: number
}

/** node:child_process, required on first use: loading it costs every start, --help included (issue 14). */
const requireHere = createRequire(import.meta.url)
export const childProcess = () => requireHere('node:child_process') as typeof import('node:child_process')

const running = new Set<import('node:child_process').ChildProcess>()

/** SIGTERM to every program still running (the interrupt handler: terraform then stops cleanly). */
export function terminateAll(): void {
  for (const c of running) c.kill('SIGTERM')
}

/** Variables that make a shell run a file at start-up: never passed on. */
const SHELL_STARTUP = ['BASH_ENV', 'ENV']

/** Runs cmd with args; never throws for a non-zero exit. A missing program is exit 127, like a shell's. */
export function exec(cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const t0 = performance.now()
  const env = { ...(opts.env ?? process.env) }
  for (const k of SHELL_STARTUP) delete env[k]
  return new Promise((resolve) => {
    const child = childProcess().spawn(cmd, [...args], { cwd: opts.cwd, env, stdio: ['pipe', 'pipe', 'pipe'], shell: false })
    running.add(child)
    let stdout = ''
    let stderr = ''
    let timedOut = false
    let settled = false
    let killTimer: NodeJS.Timeout | undefined
    const timer = opts.timeoutMs === undefined ? undefined : setTimeout(() => {
      timedOut = true
      child.kill('SIGTERM')
      killTimer = setTimeout(() => child.kill('SIGKILL'), opts.killGraceMs ?? 3000)
    }, opts.timeoutMs)
    const done = (exitCode: number) => {
      if (settled) return
      settled = true
      running.delete(child)
      clearTimeout(timer)
      clearTimeout(killTimer)
      resolve({ exitCode, stdout, stderr, timedOut, ms: performance.now() - t0 })
    }
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d
      opts.onStdout?.(d)
    })
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    child.on('error', (e: NodeJS.ErrnoException) => {
      stderr += `${cmd}: ${e.code === 'ENOENT' ? 'command not found' : e.message}\n`
      done(e.code === 'ENOENT' ? 127 : 126)
    })
    child.on('close', (code, signal) => done(code ?? 128 + (signal ? constants.signals[signal] : 0)))
    child.stdin.on('error', () => {}) // a program that exits without reading its input
    child.stdin.end(opts.input ?? '')
  })
}
