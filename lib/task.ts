// How every script starts and ends: parse args (usage errors before any I/O), --help, one top-level
// catch that maps expected failures to the exit-code table, and a clear word when interrupted.
import { DrError } from './errors.ts'
import { helpText, parseCommand, type CommandSpec, type OptionSpec, type Parsed } from './args.ts'
import { mark, redact, setJsonMode, warn } from './output.ts'

let interruptNote: () => string = () => 'Nothing had been changed yet.'

/** Tell the operator, if they press Ctrl-C now, what state things are in. */
export function onInterrupt(note: () => string): void {
  interruptNote = note
}

export async function runTask<O extends Record<string, OptionSpec>>(
  spec: CommandSpec<O>,
  body: (args: Parsed<O>) => Promise<number>,
  argv: string[] = process.argv.slice(2),
): Promise<void> {
  process.once('SIGINT', () => {
    warn(`\n${mark.fail} Aborted! ${interruptNote()}`)
    process.exit(3)
  })
  try {
    const args = parseCommand(spec, argv)
    if (args.values.help) {
      process.stdout.write(helpText(spec) + '\n')
      process.exitCode = 0
      return
    }
    setJsonMode(args.values.json)
    process.exitCode = await body(args)
  } catch (e) {
    process.exitCode = reportError(e)
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
