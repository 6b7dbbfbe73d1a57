// A plan is data: the facts found and the actions in order. The same list is printed before the
// prompt, printed with [dry-run] by --dry-run, or executed. Read-only probes run in both modes.
import { mark, say } from './output.ts'
import type { Report } from './report.ts'

export interface Action {
  title: string
  /** The command as the node will see it, shown to the operator. */
  command?: string
  /** True when the action changes anything; a dry run skips exactly these. */
  mutates: boolean
  run: (details: string[]) => Promise<void>
}

export interface Plan {
  title: string
  facts: Array<[label: string, value: string]>
  actions: Action[]
  warnings: string[]
}

export function printPlan(plan: Plan): void {
  say('')
  say(plan.title)
  const width = Math.max(0, ...plan.facts.map(([l]) => l.length)) + 2
  for (const [label, value] of plan.facts) say(`  ${(label + ':').padEnd(width)}${value}`)
  for (const w of plan.warnings) say(`  ${mark.warn} ${w}`)
  say('Actions:')
  for (const [i, a] of plan.actions.entries()) {
    say(`  ${i + 1}. ${a.title}`)
    if (a.command) say(`       ${a.command}`)
  }
  say('')
}

/** Runs the actions in order; in a dry run, mutating actions are only recorded. Each mutating action is
 * noted in report.changes (started, then done), so an interrupt can say exactly what changed. */
export async function execute(plan: Plan, report: Report, dryRun: boolean): Promise<void> {
  for (const a of plan.actions) {
    if (dryRun && a.mutates) {
      report.record(`${a.title}${a.command ? `: ${a.command}` : ''}`, 'dry-run')
      continue
    }
    const change = a.mutates ? { title: a.title, done: false } : undefined
    if (change) report.changes.push(change)
    await report.step(a.title, a.run)
    if (change) change.done = true
  }
}
