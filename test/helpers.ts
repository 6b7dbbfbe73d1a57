// Running a task the way an operator does, against the lab, and reading what it printed.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import tasks from '../tasks.json' with { type: 'json' }
import { labEnv, ROOT } from './lab/lab.ts'

export interface RunOutput {
  code: number
  stdout: string
  stderr: string
  /** Both streams, in order of arrival as far as pipes allow. */
  output: string
}

export interface RunOpts {
  env?: NodeJS.ProcessEnv
  /** Written to stdin, then stdin is closed. Without tty, stdin is a pipe (not a terminal). */
  input?: string
  /** Run under a pseudo-terminal (util-linux `script`), so the task may ask. */
  tty?: boolean
  /** With tty: when the output shows the prompt text, type the reply (e.g. ['[y/N]', 'y\\n']). */
  answers?: Array<[prompt: string, reply: string]>
  timeoutMs?: number
}

export function scriptOf(task: string): string {
  const t = tasks.tasks.find((x) => x.id === task)
  if (!t) throw new Error(`no task ${task}`)
  return join(ROOT, t.script)
}

/** Runs `npm run <task> -- args` (as node --import tsx scripts/…), against the lab. */
export function runTask(task: string, args: string[], opts: RunOpts = {}): Promise<RunOutput> {
  const env = labEnv({ HDR_REPORTS_DIR: opts.env?.HDR_REPORTS_DIR ?? reportsDir(), ...opts.env })
  const argv = [process.execPath, '--import', 'tsx', scriptOf(task), ...args]
  if (opts.tty) {
    const line = argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ')
    return spawnCollect('script', ['-qefc', line, '/dev/null'], env, opts)
  }
  return spawnCollect(argv[0]!, argv.slice(1), env, opts)
}

let reports: string | undefined
/** One reports folder per test process (tests read the files after the run), removed when it exits. */
function reportsDir(): string {
  if (!reports) {
    const dir = mkdtempSync(join(tmpdir(), 'hdr-reports-'))
    reports = dir
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
  }
  return reports
}

function spawnCollect(cmd: string, args: string[], env: NodeJS.ProcessEnv, opts: RunOpts): Promise<RunOutput> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    let output = ''
    const pending = [...(opts.answers ?? [])]
    const answer = () => {
      const next = pending[0]
      if (next && output.includes(next[0])) {
        pending.shift()
        child.stdin.write(next[1])
      }
    }
    child.stdout.on('data', (d: Buffer) => ((stdout += d), (output += d), answer()))
    child.stderr.on('data', (d: Buffer) => ((stderr += d), (output += d)))
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 300_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      const clean = (s: string) => s.replace(/\r\n/g, '\n')
      resolve({ code: code ?? 137, stdout: clean(stdout), stderr: clean(stderr), output: clean(output) })
    })
    if (opts.input !== undefined) child.stdin.write(opts.input)
    if (!opts.tty) child.stdin.end() // under script(1), stdin stays open: closing it would end the terminal
  })
}
