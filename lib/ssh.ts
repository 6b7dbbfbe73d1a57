// Every remote command goes through the operator's own `ssh`, so ~/.ssh/config, the agent and
// ProxyJump just work. One multiplexed connection per run (measured ~180 ms per fresh connection
// vs ~10 ms multiplexed). This is the only module that builds remote command lines.
// Every Ssh is registered until closed: closeAllSync() (the interrupt handler, and process exit) ends
// the multiplexed masters and removes their hdr-ssh-* folders, whatever path the run took.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DrError } from './errors.ts'
import { childProcess, exec, type ExecResult } from './exec.ts'
import { envSeconds } from './env.ts'

export interface NodeTarget {
  name: string
  host: string
  port: number
  user: string
}

export interface RemoteOptions {
  timeoutMs?: number
  input?: string
  onStdout?: (chunk: string) => void
}

export type RemoteResult = ExecResult

/** POSIX single-quoting: the remote shell sees exactly one literal word. */
export function shQuote(arg: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg
  return `'${arg.replace(/'/g, `'\\''`)}'`
}

/** One remote command line from an argv. */
export function commandLine(argv: readonly string[]): string {
  if (argv.length === 0) throw new Error('empty remote command')
  return argv.map(shQuote).join(' ')
}

/** `a | b | c` with pipefail, so a failure anywhere in the pipe fails the whole. */
export function pipeline(...argvs: ReadonlyArray<readonly string[]>): string {
  return `set -o pipefail; ${argvs.map(commandLine).join(' | ')}`
}

/** runBatch's runner: a section marker on both streams, the command (an argv, quoted), its exit code. */
const BATCH_RUN = `hdr_run() { printf '\\035B\\n'; printf '\\035B\\n' >&2; "$@"; printf '\\035E%d\\n' "$?"; }`

/** ssh's own failures (as opposed to the remote command's exit 255). */
const SSH_FAILURE = /^(ssh: |kex_exchange_identification|Connection (closed|reset|refused|timed out)|mux_client|Control socket|Host key verification failed|.*Permission denied \(|Could not resolve hostname|.*port \d+: )/m
const DEFAULT_TIMEOUT_MS = 120_000

const live = new Set<Ssh>()

/**
 * Ends every open connection now, synchronously (`ssh -O exit`, then the control folder removed): for
 * the interrupt handler and process exit, where nothing async may run. Safe to call twice.
 */
export function closeAllSync(): void {
  for (const s of [...live]) s.closeSync()
}
process.on('exit', closeAllSync)

export class Ssh {
  readonly target: NodeTarget
  /** Commands sent, for the report and the benchmark. */
  commands = 0
  private controlDir: string | undefined
  private connected = false

  private readonly connectTimeout: number
  private readonly multiplex: boolean

  /**
   * `multiplex: false` is for a single login (proving a restored guest answers SSH): no master to
   * start in the background and no `ssh -O exit` to end it (issue 14: ~30–50 ms less per login in the lab).
   */
  constructor(target: NodeTarget, opts: { multiplex?: boolean } = {}) {
    validateTarget(target)
    this.target = target
    this.connectTimeout = envSeconds('HDR_SSH_CONNECT_TIMEOUT', 8, 1, 600)
    this.multiplex = opts.multiplex ?? true
  }

  /** The ControlPath folder (0700, made on first use; removed by close). */
  private dir(): string {
    if (!this.controlDir) {
      this.controlDir = mkdtempSync(join(tmpdir(), 'hdr-ssh-'))
      live.add(this)
    }
    return this.controlDir
  }

  private baseArgs(): string[] {
    // HDR_SSH_CONFIG: the lab's ssh_config; operators use their own ~/.ssh/config. An ssh_config can
    // run commands (ProxyCommand, Match exec) by design, as ~/.ssh/config can: so this variable is the
    // operator's own choice, never read from a .env file (docs/reliability.md). LocalCommand is off.
    const cfg = process.env.HDR_SSH_CONFIG
    return [
      ...(cfg ? ['-F', cfg] : []),
      '-o', 'BatchMode=yes',
      '-o', 'PermitLocalCommand=no',
      '-o', `ConnectTimeout=${this.connectTimeout}`,
      ...(this.multiplex
        ? ['-o', 'ControlMaster=auto', '-o', `ControlPath=${join(this.dir(), 'cm-%C')}`, '-o', 'ControlPersist=300']
        : ['-o', 'ControlMaster=no', '-o', 'ControlPath=none']),
      '-o', 'ServerAliveInterval=15',
      '-o', 'ServerAliveCountMax=4',
      '-p', String(this.target.port),
      '-l', this.target.user,
    ]
  }

  /** Opens the shared connection; on failure throws the EC-1 sentence (exit 4). */
  async connect(): Promise<string> {
    const r = await exec('ssh', [...this.baseArgs(), '--', this.target.host, 'hostname'], { timeoutMs: 30_000 })
    this.commands++
    if (r.exitCode !== 0) throw unreachable(this.target, r)
    this.connected = true
    return r.stdout.trim()
  }

  /** Runs one remote command given as an argv (quoted here). Never throws for a non-zero exit. */
  run(argv: readonly string[], opts: RemoteOptions = {}): Promise<RemoteResult> {
    return this.send(commandLine(argv), opts)
  }

  /** Runs a pipeline of argvs with pipefail. */
  runPipeline(argvs: ReadonlyArray<readonly string[]>, opts: RemoteOptions = {}): Promise<RemoteResult> {
    return this.send(pipeline(...argvs), opts)
  }

  /** Runs a fixed bash script with quoted positional arguments ($1…): for work done in one round trip. */
  runScript(script: string, args: readonly string[], opts: RemoteOptions = {}): Promise<RemoteResult> {
    return this.send(commandLine(['bash', '-c', script, 'hdr', ...args]), opts)
  }

  /**
   * Several argvs in one round trip (issue 14: read-only probes that do not depend on each other). Each
   * runs after the previous one, whatever its exit, and gets back its own stdout, stderr and exit code,
   * as if it had run alone (sections split at \x1d, which no Proxmox answer holds). `commands` counts one.
   */
  async runBatch(argvs: ReadonlyArray<readonly string[]>, opts: RemoteOptions = {}): Promise<RemoteResult[]> {
    const line = [BATCH_RUN, ...argvs.map((a) => `hdr_run ${commandLine(a)}`)].join('\n')
    const r = await this.send(line, opts)
    const outs = r.stdout.split('\x1dB\n').slice(1)
    const errs = r.stderr.split('\x1dB\n').slice(1)
    return argvs.map((_, i) => {
      const out = outs[i] ?? ''
      const end = out.lastIndexOf('\x1dE')
      const exitCode = end < 0 ? 255 : Number(/^\d+/.exec(out.slice(end + 2))?.[0] ?? 255)
      return { exitCode, stdout: end < 0 ? out : out.slice(0, end), stderr: errs[i] ?? (end < 0 ? 'no answer from the node' : ''), timedOut: false, ms: r.ms }
    })
  }

  private async send(line: string, opts: RemoteOptions): Promise<RemoteResult> {
    const r = await exec('ssh', [...this.baseArgs(), '--', this.target.host, line], {
      timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      input: opts.input,
      onStdout: opts.onStdout,
    })
    this.commands++
    if (r.exitCode === 255 && SSH_FAILURE.test(r.stderr)) {
      const e = unreachable(this.target, r)
      throw this.connected ? new DrError('failed', `Lost the SSH connection to node '${this.target.name}': ${firstLine(r.stderr)}`, e.hint) : e
    }
    if (r.timedOut) throw new DrError('failed', `Node '${this.target.name}' did not finish \`${line.slice(0, 120)}\` within ${Math.round((opts.timeoutMs ?? DEFAULT_TIMEOUT_MS) / 1000)} s.`)
    return r
  }

  /** Closes the shared connection (the master would otherwise linger for ControlPersist). */
  async close(): Promise<void> {
    if (this.controlDir && this.commands > 0) await exec('ssh', [...this.baseArgs(), '-O', 'exit', '--', this.target.host], { timeoutMs: 5_000 })
    this.release()
  }

  /** close() for an interrupt or process exit: synchronous, bounded (3 s). */
  closeSync(): void {
    if (this.controlDir && this.commands > 0) {
      const env = { ...process.env }
      delete env.BASH_ENV
      delete env.ENV
      childProcess().spawnSync('ssh', [...this.baseArgs(), '-O', 'exit', '--', this.target.host], { stdio: 'ignore', timeout: 3000, env })
    }
    this.release()
  }

  private release(): void {
    this.connected = false
    if (this.controlDir) rmSync(this.controlDir, { recursive: true, force: true })
    this.controlDir = undefined
    live.delete(this)
  }
}

function validateTarget(t: NodeTarget): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9.:_-]*$/.test(t.host)) throw new DrError('usage', `Invalid SSH host for node '${t.name}': ${JSON.stringify(t.host)}.`)
  if (!/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(t.user)) throw new DrError('usage', `Invalid SSH user for node '${t.name}': ${JSON.stringify(t.user)}.`)
  if (!Number.isInteger(t.port) || t.port < 1 || t.port > 65535) throw new DrError('usage', `Invalid SSH port for node '${t.name}': ${t.port}.`)
}

function firstLine(s: string): string {
  return s.trim().split('\n').at(-1)?.trim() || 'no answer'
}

/** EC-1: the node cannot be reached. */
function unreachable(t: NodeTarget, r: ExecResult): DrError {
  const reason = r.timedOut ? 'no answer within 30 s' : firstLine(r.stderr)
  return new DrError(
    'prerequisites',
    `Cannot reach Proxmox node '${t.name}' over SSH (${t.user}@${t.host}:${t.port}): ${reason}.`,
    `Check the network connection to the node (ping ${t.host}), that sshd runs there, and that your key is loaded: ssh -p ${t.port} ${t.user}@${t.host} hostname`,
  )
}
