// The disaster recovery as data: its steps in the order tasks.json gives (`drOrder`), each with what it
// does, its prerequisites, the command to type by hand, the verification expected and its success
// criterion (CS target); the printable runbook; the run file that makes `dr --resume` possible; the
// stopwatch and the Mermaid gantt chart of a run. Pure, apart from reading and writing the run file.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import manifest from '../tasks.json' with { type: 'json' }
import { writePrivate } from './files.ts'
import { clock } from './verify.ts'

export type StepKey = 'minio' | 'state' | 'monitoring' | 'guests' | 'check'

export interface Target {
  /** The success criterion of the spec, e.g. CS-003. */
  cs: string
  /** Seconds allowed; per unit (environment, guest) when `per` is set. */
  seconds: number
  per?: 'environment' | 'guest'
}

export interface DrStep {
  n: number
  key: StepKey
  task: string
  title: string
  what: string
  prerequisites: string[]
  verification: string
  /** Commands to type by hand, in order (placeholders in <>). */
  commands: string[]
  target: Target | undefined
}

/** The whole drill's criterion: CS-007, under one hour. */
export const TOTAL_TARGET: Target = { cs: 'CS-007', seconds: 3600 }

// What is this module's own (the words and targets of each step); order, prerequisites and
// verification come from tasks.json.
const STEP_OF: Record<string, { key: StepKey; title: string; what: string; commands: string[]; target?: Target }> = {
  'rebuild:minio': {
    key: 'minio', title: 'MinIO',
    what: 'Rebuild the MinIO container (from its backup, else from zero) with the same IP, ports and buckets, versioning on, and push the local state copies back when the buckets are empty.',
    commands: ['npm run rebuild:minio -- --push-state'],
    target: { cs: 'CS-003', seconds: 600 },
  },
  'restore:state': {
    key: 'state', title: 'Terraform state',
    what: 'Check every environment\'s state in S3 (valid JSON, serial, lineage); restore a version when it is missing or damaged, or when the operator picks one (--state-version ENV=ID).',
    commands: ['npm run restore:state -- list --env <env>', 'npm run restore:state -- restore --env <env> --version <ID>'],
    target: { cs: 'CS-002', seconds: 120, per: 'environment' },
  },
  'rebuild:monitoring': {
    key: 'monitoring', title: 'Monitoring',
    what: 'Restore the monitoring VM from its latest backup and prove Prometheus, Alertmanager and Grafana (else: terraform apply in the monitoring environment).',
    commands: ['npm run rebuild:monitoring'],
    target: { cs: 'CS-004', seconds: 900 },
  },
  'restore:vm': {
    key: 'guests', title: 'Production guests',
    what: 'Restore every guest the node\'s backup jobs cover (pvesh get /cluster/backup), in the order of dr_order in terraform.tfvars, then by VMID; each from its latest backup, started, proven with ping + SSH.',
    commands: ['npm run restore:vm -- <vmid>'],
    target: { cs: 'CS-001', seconds: 300, per: 'guest' },
  },
  'dr:check': {
    key: 'check', title: 'Final check',
    what: 'Prove the whole lab: node, every guest running and reachable, MinIO and every state, monitoring, backup jobs and fresh backups.',
    commands: ['npm run dr:check'],
  },
}

interface ManifestTask { id: string; drOrder: number | null; prerequisites: string[]; verification: string }

/** The steps, in tasks.json's drOrder. */
export function drSteps(tasks: ManifestTask[] = manifest.tasks): DrStep[] {
  return tasks
    .filter((t) => t.drOrder !== null)
    .sort((a, b) => a.drOrder! - b.drOrder!)
    .map((t, i) => {
      const own = STEP_OF[t.id]
      if (!own) throw new Error(`tasks.json gives ${t.id} a drOrder, but lib/dr.ts has no step for it`)
      return { n: i + 1, key: own.key, task: t.id, title: own.title, what: own.what, prerequisites: t.prerequisites, verification: t.verification, commands: own.commands, target: own.target }
    })
}

/** The seconds a step may take: per environment or guest when it has several. */
export function targetSeconds(t: Target | undefined, units: number): number | undefined {
  if (!t) return undefined
  return t.per ? t.seconds * Math.max(1, units) : t.seconds
}

export const targetText = (t: Target | undefined, units = 1) => {
  const s = targetSeconds(t, units)
  return t && s !== undefined ? `${clock(s)} (${t.cs}${t.per ? `: ${clock(t.seconds)} per ${t.per}` : ''})` : 'no target of its own'
}

// ---- the order of the guests ----

/**
 * The guests of step 4: those the enabled backup jobs cover (an `all` job covers every guest with a
 * backup on its storage, since after a disaster the node lists none), plus dr_order's, minus the
 * steps' own (MinIO, monitoring). dr_order first, in its order, then by VMID; --only / --skip last.
 */
export function guestOrder(o: {
  covered: number[]
  drOrder: number[]
  exclude: number[]
  only?: number[]
  skip?: number[]
}): number[] {
  const all = new Set([...o.drOrder, ...o.covered])
  for (const x of o.exclude) all.delete(x)
  const rank = (v: number) => (o.drOrder.includes(v) ? o.drOrder.indexOf(v) : o.drOrder.length + v)
  let list = [...all].sort((a, b) => rank(a) - rank(b))
  if (o.only?.length) list = list.filter((v) => o.only!.includes(v))
  if (o.skip?.length) list = list.filter((v) => !o.skip!.includes(v))
  return list
}

/** `101,110` → [101, 110]; throws one sentence on anything else. */
export function parseIdList(text: string, flag: string): number[] {
  const parts = text.split(',').map((s) => s.trim()).filter(Boolean)
  if (!parts.length || !parts.every((p) => /^[1-9][0-9]{2,8}$/.test(p))) throw new Error(`Invalid ${flag} ${JSON.stringify(text)}: a comma-separated list of VMIDs, e.g. 101,110.`)
  return parts.map(Number)
}

// ---- the runbook ----

/** The printable runbook (Markdown, readable as plain text): `dr --print` and docs/disaster-recovery.md. */
export function runbook(steps: DrStep[] = drSteps()): string {
  const out: string[] = [
    '# Disaster recovery runbook',
    '',
    '<!-- Generated from tasks.json by `npm run runbook` (tools/runbook.ts). Do not edit by hand: a test fails when it is out of date. -->',
    '',
    'Print this page and keep it beside the node: it is the whole procedure, in order, for a day without',
    'a working laptop. `npm run dr` walks through the same steps, checks each one, and skips a step that',
    `is already healthy; \`npm run dr -- --print\` prints this page. Whole recovery: under ${clock(TOTAL_TARGET.seconds)} (${TOTAL_TARGET.cs}).`,
    '',
    'Before you start: a Proxmox VE node installed and reachable over SSH with your key, the backup',
    'storage mounted (`pvesm status`), your Terraform repo and its `terraform.tfvars` on this machine.',
    '',
  ]
  for (const s of steps) {
    out.push(`## ${s.n}. ${s.title} — \`${s.task}\``, '')
    out.push(s.what, '')
    out.push(`- **Prerequisites:** ${s.prerequisites.join('; ')}.`)
    out.push(`- **Target:** ${targetText(s.target)}.`)
    out.push(`- **Expected verification:** ${s.verification}.`)
    out.push('', 'By hand:', '', '```sh', ...s.commands, '```', '')
  }
  out.push(
    '## If a step fails',
    '',
    'Stop: nothing later runs on a broken base. Read the step\'s report (`reports/`), fix what it names,',
    'then `npm run dr -- --resume` re-checks the step that failed and continues from there.',
    '',
  )
  return out.join('\n')
}

// ---- the run file (dr --resume) ----

export type RunStatus = 'pending' | 'running' | 'done' | 'healthy' | 'failed'

export interface StepRun {
  key: StepKey
  title: string
  status: RunStatus
  /** Seconds since the run started, when the step started. */
  start?: number
  /** Seconds the step took (for a resumed step: all its attempts). */
  seconds?: number
  targetSeconds?: number
  cs?: string
  detail?: string
}

export interface RunFile {
  version: 1
  started: string
  updated: string
  finished: boolean
  steps: StepRun[]
}

export const runFilePath = () => join(process.env.HDR_REPORTS_DIR ?? join(process.cwd(), 'reports'), 'dr-run.json')

export function newRun(steps: DrStep[], when = new Date()): RunFile {
  return {
    version: 1, started: when.toISOString(), updated: when.toISOString(), finished: false,
    steps: steps.map((s) => ({ key: s.key, title: s.title, status: 'pending', ...(s.target ? { cs: s.target.cs } : {}) })),
  }
}

export function readRun(file = runFilePath()): RunFile | undefined {
  if (!existsSync(file)) return undefined
  const doc = JSON.parse(readFileSync(file, 'utf8')) as RunFile
  if (doc.version !== 1 || !Array.isArray(doc.steps)) throw new Error(`${file} is not a dr run file.`)
  return doc
}

export function saveRun(run: RunFile, file = runFilePath()): void {
  run.updated = new Date().toISOString()
  writePrivate(file, JSON.stringify(run, null, 2) + '\n')
}

/** Where a resumed run continues: the first step not done or healthy (it is re-checked first). */
export function resumeIndex(run: RunFile): number {
  const i = run.steps.findIndex((s) => s.status !== 'done' && s.status !== 'healthy')
  return i < 0 ? run.steps.length : i
}

// ---- the stopwatch and the gantt chart ----

export interface Timing {
  title: string
  status: RunStatus
  start: number
  seconds: number
  targetSeconds: number | undefined
  cs: string | undefined
}

export const timings = (run: RunFile): Timing[] =>
  run.steps.filter((s) => s.start !== undefined).map((s) => ({ title: s.title, status: s.status, start: s.start!, seconds: s.seconds ?? 0, targetSeconds: s.targetSeconds, cs: s.cs }))

/** `0:42 of 10:00 (CS-003) ✓` */
export function stopwatchLine(seconds: number, targetSecs: number | undefined, cs: string | undefined): string {
  if (targetSecs === undefined) return clock(seconds)
  return `${clock(seconds)} of ${clock(targetSecs)} (${cs}) ${seconds <= targetSecs ? 'within target' : 'OVER TARGET'}`
}

/** A Mermaid gantt chart of the steps as they ran, with their CS targets and CS-007 for the whole. */
export function gantt(run: RunFile, totalSeconds: number): string {
  const name = (s: string) => s.replace(/[:#;,]/g, ' ').trim()
  const whole = Math.max(1, Math.round(totalSeconds))
  const lines = [
    '```mermaid',
    'gantt',
    `  title dr run of ${run.started.slice(0, 16).replace('T', ' ')} UTC — ${clock(totalSeconds)} of ${clock(TOTAL_TARGET.seconds)} (${TOTAL_TARGET.cs})`,
    '  dateFormat X',
    '  axisFormat %H h %M m %S s',
    '  section Steps as they ran',
  ]
  for (const [i, t] of timings(run).entries()) {
    const tag = t.status === 'failed' ? 'crit, ' : t.status === 'done' || t.status === 'healthy' ? 'done, ' : 'active, '
    const end = Math.round(t.start) + Math.max(1, Math.round(t.seconds))
    lines.push(`  ${name(t.title)} ${clock(t.seconds).replace(':', 'm')}s ${t.status} :${tag}s${i + 1}, ${Math.round(t.start)}, ${end}`)
  }
  lines.push('  section Targets')
  for (const [i, t] of timings(run).entries()) {
    if (t.targetSeconds === undefined) continue
    lines.push(`  ${name(t.title)} target ${t.cs} :t${i + 1}, ${Math.round(t.start)}, ${Math.round(t.start) + t.targetSeconds}`)
  }
  lines.push(`  Whole recovery ${TOTAL_TARGET.cs} :milestone, total, ${TOTAL_TARGET.seconds}, ${TOTAL_TARGET.seconds}`)
  lines.push(`  Run finished :milestone, end, ${whole}, ${whole}`)
  lines.push('```')
  return lines.join('\n')
}

/** The DR report as Markdown: the steps, their times against their targets, the gantt chart. */
export function reportMarkdown(run: RunFile, totalSeconds: number, summary: string, next: string[]): string {
  const rows = run.steps.map((s, i) => `| ${i + 1} | ${s.title} | ${s.status} | ${s.seconds === undefined ? '' : clock(s.seconds)} | ${s.targetSeconds === undefined ? '' : `${clock(s.targetSeconds)} (${s.cs})`} | ${(s.detail ?? '').replace(/\|/g, '\\|')} |`)
  return [
    `# Disaster recovery — ${run.started.slice(0, 19).replace('T', ' ')} UTC`,
    '',
    summary,
    '',
    `Total: ${stopwatchLine(totalSeconds, TOTAL_TARGET.seconds, TOTAL_TARGET.cs)}.`,
    '',
    '| # | step | result | took | target | detail |',
    '|---|---|---|---|---|---|',
    ...rows,
    '',
    gantt(run, totalSeconds),
    '',
    ...(next.length ? ['## Next', '', ...next.map((n) => `- ${n}`), ''] : []),
  ].join('\n')
}
