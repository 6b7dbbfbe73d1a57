// The one runner for local programs (ssh, terraform). zx spawns them; arguments are passed as an
// array, so nothing is re-parsed by a local shell. zx is loaded on first use: --help stays fast.

export interface ExecOptions {
  timeoutMs?: number
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

export async function exec(cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const { $ } = await import('zx')
  const t0 = performance.now()
  const p = $({
    quiet: true,
    nothrow: true,
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    input: opts.input,
    timeout: opts.timeoutMs,
  })`${cmd} ${args}`
  if (opts.onStdout) p.stdout.on('data', (d: Buffer) => opts.onStdout?.(String(d)))
  const out = await p
  return {
    exitCode: out.exitCode ?? (out.signal ? 128 + 15 : 1),
    stdout: out.stdout,
    stderr: out.stderr,
    timedOut: out.signal === 'SIGTERM' && opts.timeoutMs !== undefined && performance.now() - t0 >= opts.timeoutMs,
    ms: performance.now() - t0,
  }
}
