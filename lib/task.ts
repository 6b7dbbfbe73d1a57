// How every script starts and ends: parse args (usage errors before any I/O), --help, one top-level
// catch that maps expected failures to the exit-code table, and one handler for SIGINT, SIGTERM and
// SIGHUP that tells the truth when interrupted.
//
// The interrupt handler (installed when a task runs as the program) is synchronous from start to end,
// so the task's own code cannot run between its steps: it runs the registered cleanups (atInterrupt),
// finishes the active report with exit 3 (a step "Interrupted by SIGTERM during '<step>'", then
// "Aborted! " and the task's note, or else what report.changes says was done and what was started), closes every SSH master
// (lib/ssh closeAllSync), sends SIGTERM to the local programs still running (lib/exec terminateAll),
// and exits 3.
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DrError } from './errors.ts'
import { helpText, parseCommand, type CommandSpec, type OptionSpec, type Parsed } from './args.ts'
import { mark, redact, setJsonMode, warn } from './output.ts'
import { activeReport } from './report.ts'
import { closeAllSync } from './ssh.ts'
import { terminateAll } from './exec.ts'

let interruptNote: (() => string) | undefined
let interruptUndo: (() => string[]) | undefined
const cleanups = new Set<() => void>()

/**
 * Tell the operator, if the run is interrupted now, what state things are in (and, optionally, the
 * undo lines). Without a note, the handler says what the report's changes record.
 */
export function onInterrupt(note: () => string, undo?: () => string[]): void {
  interruptNote = note
  interruptUndo = undo
}

/** A synchronous cleanup to run if the run is interrupted (e.g. put a renamed file back). Returns its remover. */
export function atInterrupt(cleanup: () => void): () => void {
  cleanups.add(cleanup)
  return () => void cleanups.delete(cleanup)
}

export const INTERRUPT_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

let interrupting = false
/** The handler (exported for tests through a child process only; it ends the process). */
function interrupted(signal: string): void {
  if (interrupting) return
  interrupting = true
  const undone: string[] = []
  for (const c of cleanups) {
    try {
      c()
    } catch (e) {
      undone.push(`A cleanup failed: ${e instanceof Error ? e.message : String(e)}`)
    }
  }
  const report = activeReport()
  const during = report?.running ? ` during '${report.running}'` : ''
  const note = interruptNote?.() ?? report?.changeSummary() ?? 'Nothing had been changed yet.'
  const summary = `${mark.fail} Aborted! ${note}`
  const next = [...undone, ...(interruptUndo?.() ?? [])]
  try {
    if (report && !report.finished) {
      report.facts.interrupted = { signal, during: report.running, changes: report.changes }
      report.record(`Interrupted by ${signal}${during}`, 'failed')
      report.finish({ exitCode: 3, summary, next })
    } else {
      warn(`\n${mark.fail} Interrupted by ${signal}${during}.`)
      warn(summary)
      for (const n of next) warn(`  ${n}`)
    }
  } finally {
    terminateAll()
    closeAllSync()
    process.exit(3)
  }
}

/** A task as code: what its npm script runs, and what `dr` runs in-process (the same code path). */
export interface Task {
  id: string
  /** Parses argv, runs the body, prints any error; returns the exit code (never calls process.exit). */
  run(argv: string[]): Promise<number>
}

/**
 * Declares a script's task. When the script is the program being run (`npm run <id>`, or its bundle),
 * it runs at once with process.argv and sets process.exitCode; when another task imports it (dr), it
 * only returns the Task. In a bundle every imported script shares one file, so the bundle's banner
 * names its entry task (globalThis.__HDR_ENTRY).
 */
export function defineTask<O extends Record<string, OptionSpec>>(
  spec: CommandSpec<O>,
  body: (args: Parsed<O>) => Promise<number>,
  moduleUrl: string,
): Task {
  const task: Task = { id: spec.id, run: (argv) => runBody(spec, body, argv) }
  if (isEntry(spec.id, moduleUrl)) {
    for (const sig of INTERRUPT_SIGNALS) process.on(sig, () => interrupted(sig))
    void task.run(process.argv.slice(2)).then((code) => { process.exitCode = code })
  }
  return task
}

function isEntry(id: string, moduleUrl: string): boolean {
  const entry = (globalThis as { __HDR_ENTRY?: string }).__HDR_ENTRY
  if (entry !== undefined) return entry === id
  const main = process.argv[1]
  return main !== undefined && resolve(main) === fileURLToPath(moduleUrl)
}

async function runBody<O extends Record<string, OptionSpec>>(
  spec: CommandSpec<O>,
  body: (args: Parsed<O>) => Promise<number>,
  argv: string[],
): Promise<number> {
  try {
    const args = parseCommand(spec, argv)
    if (args.values.help) {
      process.stdout.write(helpText(spec) + '\n')
      return 0
    }
    setJsonMode(args.values.json)
    return await body(args)
  } catch (e) {
    return reportError(e)
  }
}

/** Prints an error for the reader and returns its exit code. */
export function reportError(e: unknown): number {
  if (e instanceof DrError) {
    warn(`${mark.fail} ${e.message}`)
    if (e.hint) warn(`  ${e.hint}`)
    return e.exitCode
  }
  warn(`${mark.fail} Unexpected error (a bug in homelab-dr, please report it):`)
  warn(redact(e instanceof Error ? (e.stack ?? e.message) : String(e)))
  return 1
}
