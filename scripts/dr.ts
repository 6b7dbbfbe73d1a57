#!/usr/bin/env node
// dr (US6) — the guided disaster recovery: MinIO, the Terraform state, monitoring, the production
// guests, then dr:check, in the order of tasks.json. Before each step: what it does, its prerequisites
// (checked), the exact command, the verification expected. A step already healthy is verified and
// skipped, so dr on a healthy lab changes nothing; otherwise, on confirmation, dr runs the real task
// in-process (the same code as its npm script) and proves the step before going on. A failed step
// stops the run with what to do next; `--resume` continues where it stopped, re-checking that step.
//
//   npm run dr -- --print                    the whole runbook, nothing run (docs/disaster-recovery.md)
//   npm run dr -- --dry-run                  each step with the real facts; no task changes anything
//   npm run dr                               step by step, asking before each
//   npm run dr -- --yes                      unattended (a drill)
//   npm run dr -- --resume                   continue an interrupted or failed run
//   npm run dr -- --only 101,110 --skip 102  which production guests, in dr_order / VMID order
//
// Manual: docs/dr.md. Exit codes: 0 recovered and dr:check passed · 1 a step failed · 3 declined ·
// 4 the node does not answer · 5 a step ran but its verification failed · 2 usage.
import { writePrivate } from '../lib/files.ts'
import type { CommandSpec } from '../lib/args.ts'
import { loadConfig, type Config } from '../lib/config.ts'
import {
  drSteps, guestOrder, newRun, parseIdList, readRun, reportMarkdown, resumeIndex, runFilePath, runbook, saveRun,
  stopwatchLine, targetSeconds, targetText, TOTAL_TARGET, type DrStep, type RunFile, type StepRun,
} from '../lib/dr.ts'
import { DrError, usageError } from '../lib/errors.ts'
import { checkGuest, checkMinio, checkMonitoring, checkStates, coverage, healthy, type Coverage, type Line } from '../lib/health.ts'
import { mark, say, setJsonMode } from '../lib/output.ts'
import { confirm, declined } from '../lib/prompt.ts'
import { Pve } from '../lib/pve.ts'
import { Report, type Outcome } from '../lib/report.ts'
import { Ssh } from '../lib/ssh.ts'
import { defineTask, onInterrupt, type Task } from '../lib/task.ts'
import { clock } from '../lib/verify.ts'
import { task as rebuildMinio } from './rebuild-minio.ts'
import { task as restoreState } from './restore-state.ts'
import { task as rebuildMonitoring } from './rebuild-monitoring.ts'
import { task as restoreVm } from './restore-vm.ts'
import { task as drCheck } from './dr-check.ts'

const TASKS: Record<string, Task> = {
  'rebuild:minio': rebuildMinio, 'restore:state': restoreState, 'rebuild:monitoring': rebuildMonitoring, 'restore:vm': restoreVm, 'dr:check': drCheck,
}

const spec = {
  id: 'dr',
  summary: 'Guided full disaster recovery: MinIO, Terraform state, monitoring, production VMs, in that order.',
  description: `US6. The steps and their order come from tasks.json (drOrder):
  1. MinIO (rebuild:minio)  2. Terraform state (restore:state, per environment)
  3. monitoring (rebuild:monitoring)  4. production guests (restore:vm, one per guest)  5. dr:check
Before each step: what it does, its prerequisites, the command to type by hand, the verification
expected. A healthy step is verified and skipped; otherwise, once confirmed, the real task runs and the
step is verified before the next. A failed step stops the run: fix it, then --resume (the run file is
reports/dr-run.json). Each step is timed against its CS target, the whole against CS-007 (1 h). The
report (reports/dr-*.md) carries a Mermaid gantt chart of the run; the JSON beside it the same timings.
The guests of step 4: those the node's backup jobs cover, dr_order (terraform.tfvars) first, then
by VMID; --only / --skip narrow them.`,
  positionals: [],
  options: {
    print: { type: 'boolean', description: 'print the whole runbook (commands to type by hand) and run nothing' },
    resume: { type: 'boolean', description: 'continue the last interrupted or failed run, re-checking its last step' },
    only: { type: 'string', value: 'VMIDS', description: 'step 4 restores only these guests (comma-separated)' },
    skip: { type: 'string', value: 'VMIDS', description: 'step 4 leaves these guests alone (comma-separated)' },
    'state-version': { type: 'string', value: 'ENV=ID', description: 'step 2 restores this state version (comma-separated for several)' },
  },
  examples: [
    'npm run dr -- --print',
    'npm run dr -- --dry-run',
    'npm run dr -- --yes',
    'npm run dr -- --resume',
    'npm run dr -- --only 101,110',
    'npm run dr -- --state-version prod=3fA1…',
  ],
} satisfies CommandSpec

/** A task run as part of a step: what the operator would type, and the argv dr passes in-process. */
interface Command { task: string; argv: string[] }

/** The report, plus the Markdown beside its JSON (the timings and the gantt chart). */
class DrReport extends Report {
  markdown = ''
  override finish(outcome: Outcome): number {
    const code = super.finish(outcome)
    if (this.file) {
      const md = this.file.replace(/\.json$/, '.md')
      writePrivate(md, this.markdown.replace('{{SUMMARY}}', outcome.summary))
      say(`Gantt chart: ${md}`)
    }
    return code
  }
}

export const task = defineTask(spec, async ({ values }) => {
  // Arguments: usage errors before any I/O
  if (values.print) {
    say(runbook().trimEnd())
    return 0
  }
  const only = values.only === undefined ? undefined : ids(values.only, '--only')
  const skip = values.skip === undefined ? undefined : ids(values.skip, '--skip')
  const versions = parseVersions(values['state-version'])
  if (values.resume && values['dry-run']) throw usageError('--resume continues a run; --dry-run changes nothing: use one or the other.')
  const passOn = [...(values['tf-dir'] ? ['--tf-dir', values['tf-dir']] : [])]
  const jsonMode = values.json

  // Config, and the run: a new one, or the one to resume
  const cfg = await loadConfig(values['tf-dir'])
  for (const env of versions.keys()) if (!cfg.environments.some((e) => e.name === env)) throw usageError(`Unknown environment '${env}' in --state-version. Known: ${cfg.environments.map((e) => e.name).join(', ')}.`)
  const steps = drSteps()
  const previous = readRun()
  let run: RunFile
  let from = 0
  if (values.resume) {
    if (!previous || previous.finished) throw usageError(previous ? `The last dr run (${previous.started}) finished: there is nothing to resume.` : `No dr run to resume (${runFilePath()} does not exist).`, 'Start one with: npm run dr')
    run = previous
    from = resumeIndex(run)
  } else {
    run = newRun(steps)
  }
  const report = new DrReport('dr')
  const dryRun = values['dry-run']
  const offset = Math.max(0, ...run.steps.map((s) => (s.start ?? 0) + (s.seconds ?? 0))) // time already spent (resume)
  const t0 = Date.now()
  const elapsed = () => offset + (Date.now() - t0) / 1000
  const save = () => { if (!dryRun) saveRun(run) }
  onInterrupt(() => `The run file ${runFilePath()} says where it stopped: npm run dr -- --resume`)

  // Preflight: the node answers (every step needs it); what the backup jobs cover
  const node = cfg.nodes[0]!
  const pve = await Pve.connect(new Ssh(node))
  let cov: Coverage
  try {
    cov = await coverage(pve)
  } finally {
    await pve.ssh.close()
  }
  const drOrder = numberList(cfg, 'dr_order')
  const guests = guestOrder({ covered: cov.covered, drOrder, exclude: [cfg.minio?.ctid, cfg.monitoring?.vmid].filter((v): v is number => v !== undefined), only, skip })
  const envs = cfg.environments.filter((e) => e.bucket && e.key).map((e) => e.name)
  const units = (s: DrStep) => (s.key === 'guests' ? guests.length : s.key === 'state' ? envs.length : 1)

  say(`${dryRun ? `${mark.dry} ` : ''}Disaster recovery of node '${pve.node}': ${steps.length} steps, target ${clock(TOTAL_TARGET.seconds)} (${TOTAL_TARGET.cs}).`)
  if (values.resume) say(`Resuming the run of ${run.started}: steps ${run.steps.slice(0, from).map((_, i) => i + 1).join(', ') || 'none'} done, continuing at step ${from + 1} (re-checked first).`)
  say(`Guests of step 4: ${guests.length ? guests.join(', ') : 'none'}${drOrder.length ? ` (dr_order: ${drOrder.join(', ')})` : ''}.`)
  report.facts.guests = guests
  report.facts.environments = envs

  let outcome: Outcome | undefined
  for (const step of steps.slice(from)) {
    const rec = run.steps[step.n - 1]!
    const t = targetSeconds(step.target, units(step))
    Object.assign(rec, { start: rec.start ?? elapsed(), ...(t === undefined ? {} : { targetSeconds: t }) })
    const stepT0 = Date.now()
    const before = rec.seconds ?? 0
    const took = () => before + (Date.now() - stepT0) / 1000

    // The step's plan: what, prerequisites, command, verification expected, target
    say('')
    say(`Step ${step.n}/${steps.length} — ${step.title} (${step.task})`)
    say(`  What:          ${step.what}`)
    say(`  Prerequisites: ${step.prerequisites.join('; ')}`)
    say(`  Verification:  ${step.verification}`)
    say(`  Target:        ${targetText(step.target, units(step))}`)

    // Is it healthy already? (the step's verification, asked before)
    const now = await probe(step, cfg, guests, envs)
    const requested = step.key === 'state' ? [...versions.keys()] : []
    const commands = plan(step, now, guests, versions)
    if (step.key !== 'check' && healthy(now) && requested.length === 0) {
      for (const l of now) say(`  ${mark.ok} ${l.name}${l.detail ? `: ${l.detail}` : ''}`)
      Object.assign(rec, { status: 'healthy', seconds: took(), detail: 'already healthy: verified, nothing run' })
      say(`  ${mark.skip} Already healthy: skipped (${stopwatchLine(took(), t, step.target?.cs)}).`)
      save()
      continue
    }
    for (const l of now.filter((x) => !x.ok)) say(`  ${mark.fail} ${l.name}${l.detail ? `: ${l.detail}` : ''}`)
    if (typeof commands === 'string') {
      outcome = stop(rec, took(), 1, `Step ${step.n} (${step.title}) cannot run: ${commands}`, save)
      break
    }
    say('  Commands:')
    for (const c of commands) say(`    npm run ${c.task} -- ${c.argv.join(' ')}`.replace(/ -- $/, ''))

    // Dry run: each task's own dry run, with the real facts; nothing is changed
    if (dryRun) {
      for (const c of commands) {
        say(`  ${mark.dry} npm run ${c.task} -- ${[...c.argv, '--dry-run'].join(' ')}`)
        const code = await TASKS[c.task]!.run([...c.argv, '--dry-run', ...passOn])
        setJsonMode(jsonMode)
        if (code !== 0) say(`  ${mark.warn} its dry run exits ${code}${step.n > 1 ? ': it may depend on the steps before it' : ''}`)
      }
      Object.assign(rec, { status: 'pending', seconds: took(), detail: 'dry run: would run' })
      continue
    }

    // Confirm, run the real task in-process, then verify
    if (step.key !== 'check' && !(await confirm(`Run step ${step.n} (${step.title})?`, { yes: values.yes, force: values.force }))) {
      Object.assign(rec, { status: 'pending', seconds: took(), detail: 'declined' })
      save()
      declined(`step ${step.n} (${step.title})`)
    }
    Object.assign(rec, { status: 'running' })
    save()
    let failedCode = 0
    for (const c of commands) {
      say(`  → npm run ${c.task} -- ${c.argv.join(' ')}`.replace(/ -- $/, ''))
      const code = await TASKS[c.task]!.run([...c.argv, ...(step.key === 'check' ? [] : ['--yes']), ...passOn])
      setJsonMode(jsonMode)
      if (code !== 0) { failedCode = code; break }
    }
    if (failedCode) {
      outcome = step.key === 'check'
        ? stop(rec, took(), 5, 'Every step ran, but dr:check failed: the lab is not healthy yet (its lines above say what).', save)
        : stop(rec, took(), failedCode, `Step ${step.n} (${step.title}) failed: ${step.task} exited ${failedCode}.`, save)
      break
    }
    if (step.key !== 'check') {
      const after = await probe(step, cfg, guests, envs)
      for (const l of after) say(`  ${l.ok ? mark.ok : mark.fail} ${l.name}${l.detail ? `: ${l.detail}` : ''}`)
      if (!healthy(after)) {
        outcome = stop(rec, took(), 5, `Step ${step.n} (${step.title}) ran, but its verification failed: ${after.filter((l) => !l.ok).map((l) => l.name).join(', ')}.`, save)
        break
      }
    }
    Object.assign(rec, { status: 'done', seconds: took(), detail: commands.map((c) => `${c.task} ${c.argv.join(' ')}`.trim()).join('; ') })
    say(`  ${mark.ok} Step ${step.n} done and verified (${stopwatchLine(took(), t, step.target?.cs)}).`)
    save()
  }

  // Report: the steps against their targets, the total against CS-007, the gantt chart
  const total = elapsed()
  report.facts.timings = run.steps
  report.facts.totalSeconds = Math.round(total * 10) / 10
  report.facts.totalTarget = TOTAL_TARGET
  if (!outcome) {
    if (dryRun) outcome = { exitCode: 0, summary: `${mark.dry} Nothing was changed: the plan above shows each step with the real facts.`, next: ['Run it: npm run dr'] }
    else {
      run.finished = true
      save()
      const ran = run.steps.filter((s) => s.status === 'done' && s.key !== 'check').length
      outcome = { exitCode: 0, summary: `${mark.ok} The lab is back and proven by dr:check: ${ran} step${ran === 1 ? '' : 's'} run, ${run.steps.filter((s) => s.status === 'healthy').length} already healthy, in ${stopwatchLine(total, TOTAL_TARGET.seconds, TOTAL_TARGET.cs)}.` }
    }
  }
  say('')
  for (const [i, s] of run.steps.entries()) {
    if (s.start === undefined) continue
    say(`  ${i + 1}. ${s.title.padEnd(18)} ${s.status.padEnd(8)} ${stopwatchLine(s.seconds ?? 0, s.targetSeconds, s.cs)}`)
  }
  say(`  Total              ${stopwatchLine(total, TOTAL_TARGET.seconds, TOTAL_TARGET.cs)}`)
  report.markdown = reportMarkdown(run, total, '{{SUMMARY}}', outcome.next ?? [])
  return report.finish(outcome)
}, import.meta.url)

// ---- each step's facts and commands ----

/** The step's verification, asked now: the lines that say whether it is healthy. */
async function probe(step: DrStep, cfg: Config, guests: number[], envs: string[]): Promise<Line[]> {
  switch (step.key) {
    case 'minio': {
      const pve = await Pve.connect(new Ssh(cfg.nodes[0]!))
      try {
        return await checkMinio(cfg, { pve, states: true })
      } finally {
        await pve.ssh.close()
      }
    }
    case 'state': {
      const minio = await checkMinio(cfg)
      return minio[0]?.ok ? checkStates(cfg, envs) : minio.slice(0, 1)
    }
    case 'monitoring': return checkMonitoring(cfg)
    case 'guests': {
      if (!guests.length) return [{ area: 'guests', name: 'guests', ok: true, detail: 'none to restore' }]
      const pve = await Pve.connect(new Ssh(cfg.nodes[0]!))
      try {
        return await Promise.all(guests.map((v) => checkGuest(pve, cfg, v)))
      } finally {
        await pve.ssh.close()
      }
    }
    case 'check': return []
  }
}

/** The tasks to run for an unhealthy step, or why it cannot run (a sentence). */
function plan(step: DrStep, now: Line[], guests: number[], versions: Map<string, string>): Command[] | string {
  switch (step.key) {
    case 'minio': return [{ task: 'rebuild:minio', argv: ['--push-state'] }]
    case 'monitoring': return [{ task: 'rebuild:monitoring', argv: [] }]
    case 'check': return [{ task: 'dr:check', argv: [] }]
    case 'guests': {
      const bad = guests.filter((v) => now.some((l) => !l.ok && (l.name === `guest ${v}` || new RegExp(`^(VM|CT) ${v}\\b`).test(l.name))))
      return bad.map((v) => ({ task: 'restore:vm', argv: [String(v)] }))
    }
    case 'state': {
      const out: Command[] = []
      const unhealthy = now.filter((l) => !l.ok).map((l) => l.name.replace(/^state /, ''))
      if (unhealthy.includes('S3') || now.some((l) => !l.ok && l.area === 'minio')) return 'S3 does not answer: step 1 (MinIO) must be healthy first.'
      for (const env of new Set([...versions.keys(), ...unhealthy])) {
        const v = versions.get(env)
        if (!v) return `the state of '${env}' is not healthy and no version was picked. List its versions (npm run restore:state -- list --env ${env}), then: npm run dr -- --resume --state-version ${env}=<ID>`
        out.push({ task: 'restore:state', argv: ['restore', '--env', env, '--version', v] })
      }
      return out
    }
  }
}

/** Records a failed step in the run file and returns the outcome that ends the run. */
function stop(rec: StepRun, seconds: number, exitCode: number, why: string, save: () => void): Outcome {
  Object.assign(rec, { status: 'failed', seconds, detail: why })
  save()
  return { exitCode, summary: `${mark.fail} ${why} Nothing after it was run.`, next: ['Read the step\'s report above, fix what it names, then continue: npm run dr -- --resume'] }
}

// ---- small helpers ----

function ids(text: string, flag: string): number[] {
  try {
    return parseIdList(text, flag)
  } catch (e) {
    throw usageError((e as Error).message)
  }
}

function parseVersions(text: string | undefined): Map<string, string> {
  const out = new Map<string, string>()
  if (text === undefined) return out
  for (const pair of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^([a-z0-9][a-z0-9_-]{0,62})=([A-Za-z0-9._+\-/=]{1,1024})$/.exec(pair)
    if (!m) throw usageError(`Invalid --state-version ${JSON.stringify(pair)}: ENV=VERSION_ID, e.g. prod=3fA1b2.`)
    out.set(m[1]!, m[2]!)
  }
  return out
}

/** A list of VMIDs from terraform.tfvars (e.g. dr_order = [120, 101, 110]). */
function numberList(cfg: Config, key: string): number[] {
  const v = cfg.vars.get(key)
  if (!v) return []
  const list = Array.isArray(v.value) ? v.value : typeof v.value === 'string' ? v.value.split(',') : undefined
  const nums = list?.map((x) => Number(String(x).trim()))
  if (!nums || !nums.every((n) => Number.isInteger(n) && n >= 100)) throw new DrError('prerequisites', `Invalid '${key}' in ${v.file}: expected a list of VMIDs, e.g. [120, 101, 110].`)
  return nums
}

