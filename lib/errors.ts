// Expected failures and the exit-code table. One error class; its code decides the exit status.
// Anything that is not a DrError is a bug and is shown with its stack.

export const EXIT_CODES = {
  ok: 0,
  failed: 1,
  usage: 2,
  aborted: 3,
  prerequisites: 4,
  verification: 5,
} as const

export type ExitKind = keyof typeof EXIT_CODES

export const EXIT_TABLE: ReadonlyArray<[number, string]> = [
  [0, 'success: everything done and verified'],
  [1, 'failed: an action failed (the report says what changed and how to undo it)'],
  [2, 'usage: bad arguments, or a task that is not implemented yet'],
  [3, 'aborted: declined at the prompt, no terminal to ask on, or interrupted'],
  [4, 'prerequisites not met: nothing was changed'],
  [5, 'done, but the verification afterwards failed'],
]

export class DrError extends Error {
  readonly kind: ExitKind
  readonly hint: string | undefined
  constructor(kind: ExitKind, message: string, hint?: string) {
    super(message)
    this.name = 'DrError'
    this.kind = kind
    this.hint = hint
  }
  get exitCode(): number {
    return EXIT_CODES[this.kind]
  }
}

export const usageError = (message: string, hint?: string) => new DrError('usage', message, hint)
export const prereqError = (message: string, hint?: string) => new DrError('prerequisites', message, hint)
