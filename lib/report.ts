// The record of a run (EF-003): every step with status, duration and details, a human summary,
// a JSON document for --json, and a file in reports/ readable only by its owner.
import { writePrivate } from './files.ts'
import { join } from 'node:path'
import { isJsonMode, mark, printJson, say, serialise } from './output.ts'
import { DrError } from './errors.ts'

export type StepStatus = 'ok' | 'failed' | 'warning' | 'skipped' | 'dry-run'

export interface StepRecord {
  title: string
  status: StepStatus
  ms: number
  details: string[]
}

export interface Outcome {
  exitCode: number
  summary: string
  /** What to do next, or how to undo: shown last. */
  next?: string[]
}

const symbol: Record<StepStatus, string> = { ok: mark.ok, failed: mark.fail, warning: mark.warn, skipped: mark.skip, 'dry-run': mark.dry }

let active: Report | undefined

/** The report of the run in progress (the newest one made and not finished): the interrupt handler's. */
export function activeReport(): Report | undefined {
  return active
}

export class Report {
  readonly task: string
  readonly started = new Date()
  readonly steps: StepRecord[] = []
  readonly facts: Record<string, unknown> = {}
  file: string | undefined
  /** The step running now (its title), for an interrupt's "during …". */
  running: string | undefined
  /** Actions that change things, in order, with whether each finished: what an interrupt must own up to. */
  readonly changes: Array<{ title: string; done: boolean }> = []
  finished = false

  constructor(task: string) {
    this.task = task
    active = this
  }

  /** The truth about what changed, in one sentence (for an interrupt or a crash). */
  changeSummary(): string {
    const done = this.changes.filter((c) => c.done).map((c) => c.title)
    const partial = this.changes.filter((c) => !c.done).map((c) => c.title)
    if (done.length === 0 && partial.length === 0) return 'Nothing had been changed yet.'
    return [
      done.length ? `Done before the interruption: ${done.join('; ')}.` : '',
      partial.length ? `Started and not finished: ${partial.join('; ')}.` : '',
    ].filter(Boolean).join(' ')
  }

  /** Runs fn as a named step: times it, prints `✓ title (1.2s)` or `✗ title: reason`, records it. */
  async step<T>(title: string, fn: (details: string[]) => Promise<T>): Promise<T> {
    const details: string[] = []
    const t0 = performance.now()
    this.running = title
    try {
      const result = await fn(details)
      this.record(title, 'ok', details, performance.now() - t0)
      return result
    } catch (e) {
      details.push(e instanceof Error ? e.message : String(e))
      this.record(title, 'failed', details, performance.now() - t0)
      throw e
    } finally {
      this.running = undefined
    }
  }

  /**
   * A check: `✓ title: details` when it passes. When it throws, the failure is recorded and, unless
   * showFailure, not printed: the run's summary states it, so the reader does not see it twice.
   */
  async check<T>(title: string, fn: (details: string[]) => Promise<T>, opts: { showFailure?: boolean } = {}): Promise<T> {
    const details: string[] = []
    const t0 = performance.now()
    try {
      const result = await fn(details)
      this.record(details.length ? `${title}: ${details.join(', ')}` : title, 'ok', details, performance.now() - t0)
      return result
    } catch (e) {
      const reason = e instanceof Error ? e.message : String(e)
      const ms = performance.now() - t0
      if (opts.showFailure) this.record(title, 'failed', [reason], ms)
      else this.steps.push({ title, status: 'failed', ms: Math.round(ms), details: [...details, reason] })
      throw e
    }
  }

  record(title: string, status: StepStatus, details: string[] = [], ms = 0): void {
    this.steps.push({ title, status, ms: Math.round(ms), details })
    const time = ms >= 100 ? ` (${(ms / 1000).toFixed(1)}s)` : ''
    const reason = status === 'failed' || status === 'warning' ? details.at(-1) : undefined
    say(`${symbol[status]} ${title}${time}${reason ? `: ${reason}` : ''}`)
  }

  /** Prints the summary (or the JSON document), writes the report file, returns the exit code. */
  finish(outcome: Outcome): number {
    this.finished = true
    if (active === this) active = undefined
    const doc = {
      task: this.task,
      ok: outcome.exitCode === 0,
      exitCode: outcome.exitCode,
      summary: outcome.summary,
      started: this.started.toISOString(),
      durationMs: Math.round(Date.now() - this.started.getTime()),
      facts: this.facts,
      steps: this.steps,
      next: outcome.next ?? [],
    }
    this.file = writeReportFile(this.task, this.started, doc)
    if (isJsonMode()) {
      printJson({ ...doc, reportFile: this.file })
    } else {
      say('')
      say(outcome.summary)
      for (const n of outcome.next ?? []) say(`  ${n}`)
      if (this.file) say(`Report: ${this.file}`)
    }
    return outcome.exitCode
  }

  /** Finish from an expected failure: the summary is the error's sentence. */
  fail(e: DrError, next: string[] = []): number {
    return this.finish({ exitCode: e.exitCode, summary: `${mark.fail} ${e.message}`, next: [...(e.hint ? [e.hint] : []), ...next] })
  }
}

function writeReportFile(task: string, started: Date, doc: unknown): string | undefined {
  const dir = process.env.HDR_REPORTS_DIR ?? join(process.cwd(), 'reports')
  const stamp = started.toISOString().replace(/[:.]/g, '-')
  const file = join(dir, `${task.replace(':', '-')}-${stamp}.json`)
  try {
    writePrivate(file, serialise(doc) + '\n')
    return file
  } catch {
    return undefined // a report that cannot be written must not turn a restore into a failure
  }
}
