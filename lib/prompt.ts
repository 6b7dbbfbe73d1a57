// Consent. confirm() defaults to No and fails closed: no terminal and no --yes/--force means no.
// Why not zx question() or @clack/prompts: measured, they hang or resolve on a closed stdin.
import { createInterface } from 'node:readline'
import { DrError } from './errors.ts'
import { say } from './output.ts'

export interface ConsentFlags {
  yes: boolean
  force: boolean
}

export interface PromptIO {
  input: NodeJS.ReadableStream & { isTTY?: boolean }
  output: NodeJS.WritableStream
}

const stdio = (): PromptIO => ({ input: process.stdin, output: process.stderr })

/** Asks `question [y/N]`. Returns true only on an explicit yes; throws 'aborted' when it cannot ask. */
export async function confirm(question: string, flags: ConsentFlags, io: PromptIO = stdio()): Promise<boolean> {
  if (flags.yes || flags.force) {
    say(`${question} yes (${flags.force ? '--force' : '--yes'})`)
    return true
  }
  assertCanAsk(io)
  const answer = await ask(`${question} [y/N] `, io)
  return /^(y|yes)$/i.test(answer.trim())
}

/** Asks to pick one of several choices by key; the default (first) choice is the safe one. */
export async function choose(question: string, choices: { key: string; label: string }[], io: PromptIO = stdio()): Promise<string> {
  assertCanAsk(io)
  const lines = choices.map((c) => `  ${c.key}) ${c.label}`).join('\n')
  const answer = (await ask(`${question}\n${lines}\nChoice [${choices[0]?.key}]: `, io)).trim().toLowerCase()
  return choices.find((c) => c.key === answer)?.key ?? choices[0]?.key ?? ''
}

function assertCanAsk(io: PromptIO): void {
  if (!io.input.isTTY) {
    throw new DrError('aborted', 'Refusing to continue without confirmation: there is no terminal to ask on.', 'Read the plan above, then re-run with --yes to confirm it.')
  }
}

/** Resolves with the line typed, or '' (= No) when input closes first. */
function ask(prompt: string, io: PromptIO): Promise<string> {
  return new Promise((resolve) => {
    const rl = createInterface({ input: io.input, output: io.output, terminal: false })
    let done = false
    const finish = (answer: string) => {
      if (done) return
      done = true
      rl.close()
      resolve(answer)
    }
    io.output.write(prompt)
    rl.once('line', finish)
    rl.once('close', () => finish(''))
  })
}

/** Throws 'aborted' with the standard sentence when the answer was no. */
export function declined(what: string): never {
  throw new DrError('aborted', `Aborted: ${what} was not confirmed. Nothing was changed.`)
}
