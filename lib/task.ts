// How every script starts and ends: parse args (usage errors before any I/O), --help, one top-level
// catch that maps expected failures to the exit-code table, and a clear word when interrupted.
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DrError } from './errors.ts'
import { helpText, parseCommand, type CommandSpec, type OptionSpec, type Parsed } from './args.ts'
import { mark, redact, setJsonMode, warn } from './output.ts'

let interruptNote: () => string = () => 'Nothing had been changed yet.'

/** Tell the operator, if they press Ctrl-C now, what state things are in. */
export function onInterrupt(note: () => string): void {
  interruptNote = note
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
    process.once('SIGINT', () => {
      warn(`\n${mark.fail} Aborted! ${interruptNote()}`)
      process.exit(3)
    })
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

/** The body of a task whose issue has not landed: exit 2, never a fake success. */
export async function notImplemented(): Promise<number> {
  throw new DrError('usage', 'not implemented yet: this task is planned but has not been built.', 'See tasks.json and the README for the tasks that work today.')
}
