#!/usr/bin/env node
// restore:state — list, roll back, fall back and return the Terraform state kept in versioned MinIO (US2).
//
//   npm run restore:state -- list --env prod                       every version, newest first
//   npm run restore:state -- restore --env prod --version ID       that version becomes current again
//   npm run restore:state -- restore --env prod --at 2026-02-01T10:00 --dry-run
//   npm run restore:state -- fallback --env prod                   S3 is down: work from the local copy
//   npm run restore:state -- return --env prod                     S3 is back: migrate the state back
//   npm run restore:state -- snapshot                              mirror every environment's state locally (cron)
//
// restore rolls forward and never deletes history: the old content is written as a new current
// version with its serial above the current one and its lineage kept; the previous current version
// stays in the bucket, and a copy of it is saved locally first (EF-006). Then terraform init + plan.
// Manual: docs/restore-state.md.
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { writePrivate } from '../lib/files.ts'
import { atInterrupt, defineTask, onInterrupt } from '../lib/task.ts'
import type { CommandSpec, Values } from '../lib/args.ts'
import { DrError, usageError } from '../lib/errors.ts'
import { loadConfig, findEnvironment, stateStore, backendConfigArgs, workspacesInS3, type Config, type Environment } from '../lib/config.ts'
import { mark, say } from '../lib/output.ts'
import { confirm, declined } from '../lib/prompt.ts'
import { execute, printPlan, type Plan } from '../lib/plan.ts'
import { Report, type Outcome } from '../lib/report.ts'
import { exists, getText, listVersions, notAnswering, openS3, probe, putText, s3Error, classify, type ObjectVersion, type S3 } from '../lib/s3.ts'
import {
  configResources, describeDiff, diffStates, importsSkeleton, localCopies, lockKey, mirrorDir, mirrorState, parseState,
  rollForward, sha256, stateDir, stateKey, tryParseState, type TfState,
} from '../lib/state.ts'
import * as tf from '../lib/terraform.ts'
import { shQuote } from '../lib/ssh.ts'
import { takeLock, type Lock } from '../lib/lock.ts'

const ACTIONS = ['list', 'restore', 'fallback', 'return', 'snapshot'] as const
type Action = (typeof ACTIONS)[number]
const HEADER = ['  VERSION ID', 'DATE', 'SIZE', 'SERIAL', 'LINEAGE', 'TERRAFORM', 'RESOURCES', '']

const spec = {
  id: 'restore:state',
  summary: 'List, roll back, fall back to local and return the Terraform state kept in versioned MinIO.',
  description: `
list      every version of the environment's state, newest first: version id, date, size, serial,
          lineage, terraform version, resource count; the current one and delete markers marked.
restore   the chosen version (--version ID, or the last one at or before --at) becomes current again:
          shows the difference, asks, saves the current state locally, writes the old content as a new
          version (serial above the current one, lineage kept), then terraform init + plan.
fallback  S3 does not answer: switch the environment to a local backend (backend_override.tf) with the
          newest local copy, terraform init -reconfigure, terraform plan.
return    S3 answers again: remove the override, terraform init -migrate-state -force-copy, check that
          S3 now holds the local serial and lineage.
snapshot  copy every environment's current state into the local mirror (${'$'}HDR_STATE_DIR, default
          ~/.local/share/homelab-dr/state/<env>/<serial>.tfstate, mode 0600). Run it from cron.`,
  positionals: [{ name: 'action', description: ACTIONS.join(' | '), required: true }],
  options: {
    env: { type: 'string', value: 'NAME', description: 'environment (a root module; `npm run config` lists them); snapshot: all when omitted' },
    version: { type: 'string', value: 'ID', description: 'restore: the S3 version id to make current (see list)' },
    at: { type: 'string', value: 'DATETIME', description: 'restore: the last version at or before this time (YYYY-MM-DD[THH:MM[:SS]][Z], local time without Z)' },
    workspace: { type: 'string', value: 'W', description: 'terraform workspace (default: default)' },
  },
  examples: [
    'npm run restore:state -- list --env prod',
    'npm run restore:state -- restore --env prod --version 3fA1… --dry-run',
    'npm run restore:state -- restore --env prod --at "2026-02-01 10:00"',
    'npm run restore:state -- fallback --env prod',
    'npm run restore:state -- return --env prod',
    'npm run restore:state -- snapshot',
  ],
} satisfies CommandSpec

type V = Values<typeof spec.options>

interface Ctx {
  action: Action
  cfg: Config
  env: Environment
  workspace: string
  bucket: string
  key: string
  url: string
  s3: S3
  creds: tf.TfCredentials
  report: Report
  values: V
}

/** The report, plus the benchmark's figures: S3 requests made, time since the process started. */
class StateReport extends Report {
  private readonly clients: S3[] = []
  constructor() {
    super('restore:state')
  }
  /** Each environment's own S3 client, counted. */
  track(s3: S3): S3 {
    this.clients.push(s3)
    return s3
  }
  override finish(outcome: Outcome): number {
    this.facts.s3Requests = this.clients.reduce((n, s) => n + s.requests(), 0)
    this.facts.processMs = Math.round(performance.now())
    return super.finish(outcome)
  }
}

export const task = defineTask(spec, async ({ positionals, values }) => {
  // ---- args: usage errors before any I/O
  const action = readAction(positionals[0])
  const at = checkFlags(action, values)

  // ---- config: the environment's own backend (endpoint, credentials, workspace)
  const cfg = await loadConfig(values['tf-dir'], { lenient: true }) // no node needed here
  const report = new StateReport()
  let s3: S3 | undefined
  let lock: Lock | undefined
  try {
    if (action === 'snapshot') return await snapshot(cfg, report, values)
    const env = findEnvironment(cfg, values.env)
    s3 = report.track(await openEnvS3(cfg, env))
    const ctx = context(action, cfg, env, s3, report, values)
    report.facts.environment = env.name
    report.facts.object = ctx.url
    if (action === 'list') return await list(ctx)
    // One run at a time per environment (a dry run changes nothing: it takes no lock)
    if (!values['dry-run']) lock = takeLock({ kind: 'environment', name: ctx.workspace === 'default' ? env.name : `${env.name}.${ctx.workspace}` }, 'restore:state')
    if (action === 'restore') return await restore(ctx, at)
    if (action === 'fallback') return await fallback(ctx)
    return await returnToS3(ctx)
  } catch (e) {
    if (e instanceof DrError) return report.fail(e)
    throw e
  } finally {
    lock?.release()
    s3?.close()
  }
}, import.meta.url)

/** An S3 client for this environment's own endpoint and credentials (lib/config stateStore). */
async function openEnvS3(cfg: Config, env: Environment): Promise<S3> {
  const store = stateStore(cfg, env)
  return openS3({ endpoint: store.endpoint, accessKey: store.accessKey, secretKey: store.secretKey, region: store.region })
}

// ---- args -----------------------------------------------------------------------------------------

function readAction(word: string | undefined): Action {
  const a = ACTIONS.find((x) => x === word)
  if (!a) throw usageError(`Unknown action '${word}': use one of ${ACTIONS.join(', ')}.`, 'Run with --help for what each does.')
  return a
}

/** Flag combinations, refused before any I/O. Returns the parsed --at. */
function checkFlags(action: Action, v: V): Date | undefined {
  if (action !== 'restore') {
    if (v.version !== undefined) throw usageError(`--version only applies to restore, not ${action}.`)
    if (v.at !== undefined) throw usageError(`--at only applies to restore, not ${action}.`)
  } else {
    if (v.version === undefined && v.at === undefined) throw usageError('restore needs --version ID or --at DATETIME.', 'Run `list --env NAME` to see the versions.')
    if (v.version !== undefined && v.at !== undefined) throw usageError('Give either --version or --at, not both.')
    if (v.version !== undefined && !/^[\x21-\x7e]{1,1024}$/.test(v.version)) throw usageError(`Invalid --version ${JSON.stringify(v.version)}: a version id is printable ASCII without spaces.`)
  }
  if (action !== 'snapshot' && v.env === undefined) throw usageError('Missing --env NAME.', 'Run with --help for the usage.')
  if (v.workspace !== undefined && !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,89}$/.test(v.workspace)) throw usageError(`Invalid --workspace ${JSON.stringify(v.workspace)}.`)
  return v.at === undefined ? undefined : parseAt(v.at)
}

/**
 * --at: YYYY-MM-DD, YYYY-MM-DD[T ]HH:MM[:SS[.fff]], optional Z or ±HH:MM (local time without one).
 * "At or before" counts the whole unit written: a day means up to 23:59:59.999 of it, a minute up
 * to :59.999, a second up to .999 (list shows dates to the second, S3 keeps milliseconds).
 */
function parseAt(text: string): Date {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$/.exec(text.trim())
  const bad = () => usageError(`Cannot read --at ${JSON.stringify(text)}: use YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] or an ISO time with Z.`)
  if (!m) throw bad()
  const [, y, mo, d, h, mi, s, ms, zone] = m
  const n = (v: string | undefined) => Number(v ?? 0)
  if (n(mo) < 1 || n(mo) > 12 || n(d) < 1 || n(d) > new Date(n(y), n(mo), 0).getDate() || n(h) > 23 || n(mi) > 59 || n(s) > 59) throw bad()
  const parts = [n(y), n(mo) - 1, n(d), n(h), n(mi), n(s), Number((ms ?? '0').padEnd(3, '0'))] as const
  const unit = h === undefined ? 86_400_000 : s === undefined ? 60_000 : ms === undefined ? 1000 : 1
  let start: number
  if (zone) {
    const offset = zone === 'Z' ? 0 : (zone[0] === '-' ? -1 : 1) * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(-2)))
    start = Date.UTC(...parts) - offset * 60_000
  } else start = new Date(...parts).getTime()
  return new Date(start + unit - 1)
}

function context(action: Action, cfg: Config, env: Environment, s3: S3, report: Report, values: V): Ctx {
  const store = stateStore(cfg, env) // throws when the environment has no usable s3 backend
  const workspace = values.workspace ?? env.workspace
  const key = stateKey(env.key!, workspace, env.workspaceKeyPrefix)
  return {
    action, cfg, env, workspace, bucket: env.bucket!, key, s3, report, values,
    url: `s3://${env.bucket}/${key}`,
    creds: { accessKey: store.accessKey, secretKey: store.secretKey },
  }
}

// ---- list (US2.1) -----------------------------------------------------------------------------------

interface VersionInfo extends ObjectVersion {
  state?: TfState
  invalid?: string
  lineageChanged?: boolean
}

async function list(c: Ctx): Promise<number> {
  // Preflight
  await verifyS3Answers(c)
  const versions = await readVersions(c)
  if (versions.length === 0) throw noStateInS3(c)

  // Report
  const rows = versions.map(row)
  const widths = rows[0]!.map((_, i) => Math.max(...[HEADER, ...rows].map((r) => r[i]!.length)))
  const fmt = (r: string[]) => '  ' + r.map((cell, i) => (i >= 2 && i <= 3 || i === 6 ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ').trimEnd()
  say(`State versions of '${c.env.name}' (${c.url}), newest first, dates in UTC:`)
  say(fmt(HEADER))
  for (const r of rows) say(fmt(r))
  const current = versions.find((v) => v.isLatest)
  mirrorCurrent(c, current)
  c.report.facts.versions = versions.map((v) => ({
    versionId: v.versionId, lastModified: v.lastModified.toISOString(), size: v.size, current: v.isLatest, deleteMarker: v.deleteMarker,
    serial: v.state?.serial, lineage: v.state?.lineage, terraformVersion: v.state?.terraform_version, resources: v.state?.resources.length,
    lineageChanged: v.lineageChanged ?? false, invalid: v.invalid,
  }))
  // The environment's other workspaces (<workspace_key_prefix>/<w>/<key>), so none is overlooked.
  const others = (await workspacesInS3(c.s3, c.env).catch(() => [] as string[])).filter((w) => w !== c.workspace)
  if (others.length) say(`Other workspaces of '${c.env.name}' in S3: ${others.join(', ')} (list one with --workspace NAME).`)
  c.report.facts.otherWorkspaces = others
  const states = versions.filter((v) => !v.deleteMarker).length
  const now = current?.deleteMarker ? 'the latest entry is a delete marker: no current state' : current?.state ? `current: serial ${current.state.serial}` : 'the current version is not valid state'
  return c.report.finish({
    exitCode: 0,
    summary: `${states} version${states === 1 ? '' : 's'} of '${c.env.name}' state (${now}).`,
    next: [`To make one current again: npm run restore:state -- restore ${envFlags(c)} --version <VERSION ID>`],
  })
}

function row(v: VersionInfo): string[] {
  const date = v.lastModified.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z')
  const id = `${v.isLatest ? '*' : ' '} ${v.versionId}`
  if (v.deleteMarker) return [id, date, '-', '-', '-', '-', '-', v.isLatest ? 'delete marker (current)' : 'delete marker']
  const notes = [v.isLatest ? 'current' : '', v.lineageChanged ? 'lineage changed' : '', v.invalid ? `not valid state: ${v.invalid}` : ''].filter(Boolean).join(', ')
  const s = v.state
  return [id, date, `${v.size} B`, s ? String(s.serial) : '-', s ? s.lineage.slice(0, 8) : '-', s?.terraform_version ?? '-', s ? String(s.resources.length) : '-', notes]
}

/** Every version with its parsed content (4 reads at a time); lineage changes flagged against the older one. */
async function readVersions(c: Ctx, read: (v: ObjectVersion, all: ObjectVersion[]) => boolean = () => true): Promise<VersionInfo[]> {
  let versions: ObjectVersion[]
  try {
    versions = await listVersions(c.s3, c.bucket, c.key)
  } catch (e) {
    throw s3Error(e, c.s3, `listing the versions of ${c.url}`)
  }
  const out: VersionInfo[] = versions.map((v) => ({ ...v }))
  const queue = out.filter((v) => !v.deleteMarker && read(v, versions))
  await Promise.all(Array.from({ length: 4 }, async () => {
    for (let v = queue.shift(); v; v = queue.shift()) {
      const body = await getText(c.s3, c.bucket, c.key, v.versionId).catch((e: unknown) => { throw s3Error(e, c.s3, `reading version ${v!.versionId}`) })
      const r = tryParseState(body.text)
      if (r.ok) v.state = r.state
      else v.invalid = r.reason
      ;(v as VersionInfo & { text?: string }).text = body.text
    }
  }))
  let older: TfState | undefined
  for (const v of [...out].reverse()) {
    if (!v.state) continue
    if (older && older.lineage !== v.state.lineage) v.lineageChanged = true
    older = v.state
  }
  return out
}

// ---- restore (US2.2) --------------------------------------------------------------------------------

async function restore(c: Ctx, at: Date | undefined): Promise<number> {
  const dry = c.values['dry-run']
  // Preflight
  refuseWhileFallback(c)
  await tf.verifyTerraform() // init + plan come after the write: know now that they can run
  await verifyS3Answers(c)
  // Only the chosen version and the current one are read: the request count does not grow with history.
  let chosen: string | undefined
  const versions = await readVersions(c, (v, all) => v.isLatest || v.versionId === (chosen ??= all.length ? pickVersion(c, all, at).versionId : ''))
  if (versions.length === 0) throw noStateInS3(c)
  const target = pickVersion(c, versions, at)
  const current = versions.find((v) => v.isLatest)!
  if (!target.state) throw new DrError('prerequisites', `Version ${target.versionId} of ${c.url} is not a valid Terraform state (${target.invalid}); refusing to restore it.`, 'Pick another version (see list). Nothing was changed.')
  if (target.isLatest) {
    return c.report.finish({ exitCode: 0, summary: `${mark.ok} Version ${target.versionId} (serial ${target.state.serial}) is already the current state of '${c.env.name}'. Nothing to do.` })
  }
  await verifyNoLock(c)
  if (current.invalid) c.report.record('Current state', 'warning', [`the current version ${current.versionId} is not valid state (${current.invalid}); it is still saved first`])

  // Plan
  const currentText = (current as VersionInfo & { text?: string }).text
  const rolled = rollForward(target.state, current.state?.serial)
  const empty: TfState = { version: 4, terraform_version: '', serial: 0, lineage: '(none)', outputs: {}, resources: [] }
  const diff = diffStates(current.state ?? empty, target.state)
  const safety = { file: '' }
  let newVersion: string | undefined
  let planResult: tf.PlanResult | undefined
  const plan: Plan = {
    title: `Restore the Terraform state of '${c.env.name}' (${c.url})`,
    facts: [
      ['restore', `version ${target.versionId} from ${iso(target.lastModified)} (serial ${target.state.serial})`],
      ['current', current.deleteMarker ? `delete marker ${current.versionId} (no current state)` : `version ${current.versionId} from ${iso(current.lastModified)} (serial ${current.state?.serial ?? '?'})`],
    ],
    warnings: diff.lineage[0] !== diff.lineage[1] && current.state ? ['The lineage differs: the restored state belongs to another history than the current one.'] : [],
    actions: [
      {
        title: `Save the current state to the local mirror (${mirrorDir(c.env.name, c.workspace)})`,
        mutates: true,
        run: async (d) => {
          if (currentText === undefined) return void d.push('no current state to save (delete marker)')
          safety.file = saveSafetyCopy(c, currentText)
          d.push(safety.file)
        },
      },
      {
        title: `Write version ${target.versionId} as the new current version (serial ${rolled.serial}, lineage ${target.state.lineage})`,
        command: `PUT ${c.url}`,
        mutates: true,
        run: async (d) => {
          await refuseIfMoved(c, current)
          newVersion = await putText(c.s3, c.bucket, c.key, rolled.text).catch((e: unknown) => { throw s3Error(e, c.s3, `writing ${c.url}`) })
          onInterrupt(() => `The state in S3 was rolled forward (new version ${newVersion}); the previous version ${current.versionId} is still in the bucket${safety.file ? `, and copied to ${safety.file}` : ''}.`,
            () => [`To undo: npm run restore:state -- restore ${envFlags(c)} --version ${shQuote(current.versionId)}`])
          d.push(`new version ${newVersion ?? '(the server gave no version id)'}`)
        },
      },
      {
        title: 'Check that S3 now serves the restored state, and the previous version is kept',
        mutates: true,
        run: async (d) => verifyRestored(c, rolled, target.state!, current, d),
      },
      { title: 'terraform init', command: `terraform -chdir=${shQuote(c.env.dir)} init -input=false`, mutates: true, run: async () => tf.init(c.env.dir, backendConfigArgs(c.env), tfOpts(c)) },
      {
        title: 'terraform plan', command: `terraform -chdir=${shQuote(c.env.dir)} plan -detailed-exitcode`, mutates: true,
        run: async (d) => {
          planResult = await tf.plan(c.env.dir, tfOpts(c))
          d.push(planResult.summary)
        },
      },
    ],
  }
  printPlan(plan)
  say('Changes to the state (current → restored):')
  for (const line of describeDiff(diff, rolled.serial)) say(`  ${line}`)
  say('')

  // Confirm
  if (!dry && !(await confirm(`Make version ${target.versionId} the current state of '${c.env.name}'?`, c.values))) declined('the state restore')

  // Act (the safety copy is the first action), verify
  const undo = `npm run restore:state -- restore ${envFlags(c)} --version ${shQuote(current.versionId)}`
  c.report.facts.target = { versionId: target.versionId, serial: target.state.serial, lineage: target.state.lineage }
  c.report.facts.previous = { versionId: current.versionId, serial: current.state?.serial }
  try {
    await execute(plan, c.report, dry)
  } catch (e) {
    if (!(e instanceof DrError) || newVersion === undefined) throw e
    const d = new DrError(e.kind === 'failed' ? 'verification' : e.kind, `${e.message} The state WAS restored in S3 (version ${newVersion}, serial ${rolled.serial}).`)
    return c.report.fail(d, [`Previous state: version ${current.versionId}${safety.file ? `, copy at ${safety.file}` : ''}. To undo: ${undo}`])
  }
  c.report.facts.newVersion = newVersion
  c.report.facts.newSerial = rolled.serial
  c.report.facts.safetyCopy = safety.file || undefined
  c.report.facts.plan = planResult
  if (dry) return c.report.finish({ exitCode: 0, summary: `${mark.dry} Dry run: nothing was changed (no local copy, no write to S3, no terraform).` })
  if (planResult?.exitCode === 2) c.report.record(`terraform plan: ${planResult.summary}`, 'warning', [...planResult.changes, 'review these before the next apply'])
  return c.report.finish({
    exitCode: 0,
    summary: `${mark.ok} Restored '${c.env.name}': version ${target.versionId} (serial ${target.state.serial}) is current again as serial ${rolled.serial} (version ${newVersion}). terraform plan: ${planResult?.summary}`,
    next: [...(safety.file ? [`Safety copy of the previous state (serial ${current.state?.serial ?? '?'}): ${safety.file}`] : []), `To undo: ${undo}`],
  })
}

function pickVersion(c: Ctx, versions: VersionInfo[], at: Date | undefined): VersionInfo {
  if (c.values.version !== undefined) {
    const v = versions.find((x) => x.versionId === c.values.version)
    if (!v) throw new DrError('usage', `Version ${c.values.version} is not a version of ${c.url}.`, `Run \`list ${envFlags(c)}\` to see its versions. Nothing was changed.`)
    if (v.deleteMarker) throw new DrError('usage', `Version ${v.versionId} is a delete marker, not a state.`, 'Pick a version with a serial (see list). Nothing was changed.')
    return v
  }
  const states = versions.filter((v) => !v.deleteMarker)
  const v = states.find((x) => x.lastModified.getTime() <= at!.getTime())
  if (!v) {
    const first = states.at(-1)
    throw new DrError('usage', `--at ${iso(at!)} is before the first version of ${c.url}${first ? ` (${iso(first.lastModified)})` : ''}.`, 'Nothing was changed.')
  }
  return v
}

async function verifyNoLock(c: Ctx): Promise<void> {
  const lock = lockKey(c.key)
  const held = await exists(c.s3, c.bucket, lock).catch((e: unknown) => { throw s3Error(e, c.s3, `checking ${lock}`) })
  if (!held) return
  if (!c.values.force) throw new DrError('prerequisites', `The state is locked: s3://${c.bucket}/${lock} exists (a terraform run is in progress, or one crashed).`, 'Wait for it to finish; if no run is in progress, re-run with --force. Nothing was changed.')
  c.report.record(`Lock s3://${c.bucket}/${lock} exists`, 'warning', ['ignored because of --force'])
}

/**
 * Just before the write: the current version and the lock are read again. An apply that landed while
 * the operator read the plan (a new current version, or its lock held now) is never superseded.
 */
async function refuseIfMoved(c: Ctx, current: ObjectVersion): Promise<void> {
  const latest = await listVersions(c.s3, c.bucket, c.key).then((vs) => vs.find((v) => v.isLatest), (e: unknown) => { throw s3Error(e, c.s3, `reading the versions of ${c.url} again`) })
  if (latest?.versionId !== current.versionId) {
    throw new DrError('prerequisites', `The state changed while the plan was shown: the current version of ${c.url} is now ${latest?.versionId ?? '(none)'}, not ${current.versionId}. S3 was not written.`,
      `Someone (a terraform apply?) wrote the state in between. Look again: npm run restore:state -- list ${envFlags(c)}`)
  }
  const lock = lockKey(c.key)
  const held = await exists(c.s3, c.bucket, lock).catch((e: unknown) => { throw s3Error(e, c.s3, `checking ${lock}`) })
  if (held && !c.values.force) {
    throw new DrError('prerequisites', `The state was locked while the plan was shown: s3://${c.bucket}/${lock} exists (a terraform run started). S3 was not written.`, 'Wait for it to finish, then run the restore again.')
  }
}

async function verifyRestored(c: Ctx, rolled: { text: string; serial: number }, target: TfState, previous: ObjectVersion, d: string[]): Promise<void> {
  const now = await getText(c.s3, c.bucket, c.key).catch((e: unknown) => { throw s3Error(e, c.s3, `reading back ${c.url}`) })
  const s = parseState(now.text, `The current ${c.url}`)
  if (s.serial !== rolled.serial || s.lineage !== target.lineage || sha256(now.text) !== sha256(rolled.text)) {
    throw new DrError('verification', `S3 serves serial ${s.serial} lineage ${s.lineage}, not the restored serial ${rolled.serial}: another client wrote in between.`)
  }
  d.push(`current: serial ${s.serial}, lineage ${s.lineage}`)
  if (!previous.deleteMarker) {
    const kept = await getText(c.s3, c.bucket, c.key, previous.versionId).then(() => true, () => false)
    if (!kept) throw new DrError('verification', `The previous version ${previous.versionId} is no longer in the bucket.`)
    d.push(`previous version ${previous.versionId} kept`)
  }
  mirrorState(c.env.name, c.workspace, rolled.text, s)
}

// ---- fallback (US2.3, EC-5) -------------------------------------------------------------------------

async function fallback(c: Ctx): Promise<number> {
  const dry = c.values['dry-run']
  // Preflight
  const override = tf.readOverride(c.env.dir)
  if (override.state === 'ours') throw new DrError('prerequisites', `'${c.env.name}' is already on its local fallback backend (${override.file}).`, `When S3 answers again: npm run restore:state -- return ${envFlags(c)}`)
  if (override.state === 'foreign') throw new DrError('prerequisites', `${override.file} exists and was not written by homelab-dr; refusing to replace it.`)
  const answer = await probe(c.s3, c.bucket)
  if (answer !== 'unreachable') {
    throw new DrError('prerequisites', `S3 at ${c.s3.endpoint} answers${answer === 'up' ? '' : ` (${answer})`}: there is nothing to fall back from.`, answer === 'up' ? `The state is in ${c.url}: use list / restore.` : answer === 'no-bucket' ? 'MinIO is empty: recreate the bucket with versioning, then push the newest local copy back (terraform state push; see docs/restore-state.md, "MinIO rebuilt empty"). rebuild:minio (US3) will automate this.' : 'Fix the S3 credentials or bucket instead.')
  }
  await tf.verifyTerraform()
  const local = fallbackPaths(c)
  const copies = localCopies(c.env.name, c.workspace, [local.file])
  const best = copies[0]
  if (!best) return stateLost(c)

  // Plan
  const plan: Plan = {
    title: `Fall back to a local backend for '${c.env.name}' (${notAnswering(c.s3)})`,
    facts: [
      ['state', `serial ${best.state.serial}, lineage ${best.state.lineage}, saved ${iso(best.mtime)}`],
      ['from', best.file],
      ['local backend', local.file],
    ],
    warnings: copies.length > 1 ? [] : ['This is the only local copy.'],
    actions: [
      { title: `Put the local copy in place (${local.file})`, mutates: true, run: async (d) => void d.push(copyPrivate(best.file, local.file)) },
      { title: `Write ${tf.OVERRIDE_FILE} (backend "local")`, command: join(c.env.dir, tf.OVERRIDE_FILE), mutates: true, run: async () => writeFileSync(join(c.env.dir, tf.OVERRIDE_FILE), tf.overrideText(c.env.name, local.backend)) },
      { title: 'terraform init -reconfigure', command: `terraform -chdir=${shQuote(c.env.dir)} init -reconfigure -input=false`, mutates: true, run: async () => tf.init(c.env.dir, ['-reconfigure'], tfOpts(c)) },
    ],
  }
  printPlan(plan)
  if (!dry && !(await confirm(`Switch '${c.env.name}' to the local state (serial ${best.state.serial})?`, c.values))) declined('the fallback')

  // Act; undo the override if init fails or the run is interrupted before it finished
  const overrideFile = join(c.env.dir, tf.OVERRIDE_FILE)
  const unwrite = () => rmSync(overrideFile, { force: true })
  const dropCleanup = atInterrupt(() => existsSync(overrideFile) && (unwrite(), c.report.record(`Removed ${overrideFile} again: '${c.env.name}' still uses S3`, 'warning')))
  try {
    await execute(plan, c.report, dry)
  } catch (e) {
    unwrite()
    throw e
  } finally {
    dropCleanup()
  }
  if (dry) return c.report.finish({ exitCode: 0, summary: `${mark.dry} Dry run: nothing was changed (no override, no terraform).` })

  // Verify
  const verdict = await verifyPlan(c)
  const using = `serial ${best.state.serial} (lineage ${best.state.lineage}), the copy saved ${iso(best.mtime)}`
  c.report.facts.fallback = { file: local.file, from: best.file, serial: best.state.serial, lineage: best.state.lineage, saved: best.mtime.toISOString() }
  return c.report.finish({
    exitCode: verdict,
    summary: `${verdict === 0 ? mark.ok : mark.fail} '${c.env.name}' now uses the local state ${local.file}: ${using}.`,
    next: [`terraform works as usual in ${c.env.dir}. When MinIO answers again: npm run restore:state -- return ${envFlags(c)}`],
  })
}

function fallbackPaths(c: Ctx): { file: string; backend: { path?: string; workspaceDir?: string } } {
  const dir = join(stateDir(), c.env.name, 'fallback')
  if (c.workspace === 'default') return { file: join(dir, 'terraform.tfstate'), backend: { path: join(dir, 'terraform.tfstate') } }
  const wd = join(dir, 'workspaces')
  return { file: join(wd, c.workspace, 'terraform.tfstate'), backend: { workspaceDir: wd } }
}

/** EC-5: no S3, no local copy. Say it plainly and leave an imports.tf skeleton to rebuild the state. */
async function stateLost(c: Ctx): Promise<number> {
  const resources = await configResources(c.env.dir)
  const file = join(stateDir(), c.env.name, 'imports.tf')
  if (!c.values['dry-run']) writePrivate(file, importsSkeleton(c.env.name, resources))
  c.report.facts.stateLost = true
  c.report.facts.importsFile = file
  return c.report.fail(new DrError('prerequisites', `The Terraform state of '${c.env.name}' is lost: ${notAnswering(c.s3)} and there is no local copy in ${mirrorDir(c.env.name, c.workspace)}.`), [
    `${c.values['dry-run'] ? 'Would write' : 'Wrote'} ${file}: one import block for each of the ${resources.length} resources in ${c.env.dir}, ids left for you to fill.`,
    'Bring S3 back first (MinIO running with its bucket), fill the ids, copy the file into the environment folder, then: terraform init && terraform plan (only imports) && terraform apply.',
  ])
}

// ---- return (US2.4) ---------------------------------------------------------------------------------

async function returnToS3(c: Ctx): Promise<number> {
  const dry = c.values['dry-run']
  // Preflight
  resumeInterruptedReturn(c)
  const override = tf.readOverride(c.env.dir)
  if (override.state !== 'ours') throw new DrError('prerequisites', `'${c.env.name}' is not on a homelab-dr fallback backend (no ${tf.OVERRIDE_FILE} of ours in ${c.env.dir}): nothing to return.`)
  await verifyS3Answers(c)
  await tf.verifyTerraform()
  const localFile = fallbackPaths(c).file
  if (!existsSync(localFile)) throw new DrError('prerequisites', `The local fallback state ${localFile} is missing.`, `Restore it, or remove ${override.file} by hand and run terraform init -reconfigure.`)
  const localText = readFileSync(localFile, 'utf8')
  const local = parseState(localText, `The local fallback state ${localFile}`)
  const remote = await getText(c.s3, c.bucket, c.key).then((r) => r.text, (e: unknown) => (classify(e) === 'not-found' ? undefined : Promise.reject(s3Error(e, c.s3, `reading ${c.url}`))))
  const remoteState = remote === undefined ? undefined : tryParseState(remote)
  if (remoteState?.ok) {
    const r = remoteState.state
    if (r.serial > local.serial) {
      throw new DrError('prerequisites', `S3 holds a newer state than the local one: serial ${r.serial} in ${c.url}, serial ${local.serial} locally. Something wrote to S3 during the fallback; returning would overwrite it, so nothing was changed.`,
        `Compare them (local: ${localFile}). To keep S3's: remove ${override.file} and run terraform init -reconfigure. To keep the local one: restore:state restore after return, or terraform state push.`)
    }
    if (r.lineage !== local.lineage && !c.values.force) throw new DrError('prerequisites', `S3 holds a state of another lineage (${r.lineage}) than the local one (${local.lineage}).`, 'Re-run with --force to replace it (its version stays in the bucket). Nothing was changed.')
  }

  // Plan
  const plan: Plan = {
    title: `Return '${c.env.name}' to S3 (${c.url})`,
    facts: [
      ['local state', `serial ${local.serial}, lineage ${local.lineage} (${localFile})`],
      ['S3 now', remoteState === undefined ? 'no state' : remoteState.ok ? `serial ${remoteState.state.serial}, lineage ${remoteState.state.lineage}` : `not valid state (${remoteState.reason})`],
    ],
    warnings: [],
    actions: [
      { title: 'Keep the local state in the mirror', mutates: true, run: async (d) => void d.push(mirrorState(c.env.name, c.workspace, localText, local).file) },
      ...(remote !== undefined ? [{ title: 'Save the state S3 holds now to the mirror', mutates: true, run: async (d: string[]) => void d.push(saveSafetyCopy(c, remote)) }] : []),
      {
        // Measured with terraform 1.11: init -migrate-state skips the copy when both states are equal apart
        // from the serial, and into an empty bucket writes serial 1 with a NEW lineage. So the exact local
        // bytes go to S3 first; the migration then only re-points terraform at S3.
        title: `Write the local state to ${c.url} (serial ${local.serial}, lineage ${local.lineage})`, command: `PUT ${c.url}`, mutates: true,
        run: async (d) => {
          const now = await getText(c.s3, c.bucket, c.key).then((r) => r.text, (e: unknown) => (classify(e) === 'not-found' ? undefined : Promise.reject(s3Error(e, c.s3, `reading ${c.url} again`))))
          if (now !== remote) throw new DrError('prerequisites', `The state in ${c.url} changed while the plan was shown. S3 was not written; '${c.env.name}' stays on its local state.`, `Look at it, then run return again: npm run restore:state -- return ${envFlags(c)}`)
          d.push(`version ${await putText(c.s3, c.bucket, c.key, localText).catch((e: unknown) => { throw s3Error(e, c.s3, `writing ${c.url}`) })}`)
        },
      },
      { title: `Remove ${tf.OVERRIDE_FILE}`, command: override.file, mutates: true, run: async () => renameSync(override.file, `${override.file}.returned`) },
      { title: 'terraform init -migrate-state -force-copy', command: `terraform -chdir=${shQuote(c.env.dir)} init -migrate-state -force-copy -input=false`, mutates: true, run: async () => tf.init(c.env.dir, ['-migrate-state', '-force-copy', ...backendConfigArgs(c.env)], tfOpts(c)) },
    ],
  }
  printPlan(plan)
  if (!dry && !(await confirm(`Migrate '${c.env.name}' back to S3 (serial ${local.serial})?`, c.values))) declined('the return to S3')
  const putBack = () => existsSync(`${override.file}.returned`) && (renameSync(`${override.file}.returned`, override.file), true) // still on local: nothing lost
  const dropCleanup = atInterrupt(() => putBack() && c.report.record(`Put ${override.file} back: '${c.env.name}' stays on its local state; run return again`, 'warning'))
  try {
    await execute(plan, c.report, dry)
  } catch (e) {
    putBack()
    throw e
  } finally {
    dropCleanup()
  }
  if (dry) return c.report.finish({ exitCode: 0, summary: `${mark.dry} Dry run: nothing was changed.` })
  rmSync(`${override.file}.returned`, { force: true })

  // Verify
  await c.report.step('Check that S3 holds the local serial and lineage', async (d) => {
    const now = parseState((await getText(c.s3, c.bucket, c.key)).text, `The current ${c.url}`)
    d.push(`S3: serial ${now.serial}, lineage ${now.lineage}`)
    if (now.serial !== local.serial || now.lineage !== local.lineage) throw new DrError('verification', `S3 holds serial ${now.serial} lineage ${now.lineage}, expected serial ${local.serial} lineage ${local.lineage}.`)
  })
  const verdict = await verifyPlan(c)
  c.report.facts.returned = { serial: local.serial, lineage: local.lineage, localBackup: localFile }
  return c.report.finish({
    exitCode: verdict,
    summary: `${verdict === 0 ? mark.ok : mark.fail} '${c.env.name}' is back on S3 (${c.url}) with serial ${local.serial}, lineage ${local.lineage}.`,
    next: [`The local copy stays as a backup: ${localFile}`],
  })
}

/**
 * A return that was killed between renaming the override away and finishing init leaves
 * backend_override.tf.returned and no override: put it back (it is ours), so return can run again.
 */
function resumeInterruptedReturn(c: Ctx): void {
  const file = join(c.env.dir, tf.OVERRIDE_FILE)
  if (existsSync(file) || !existsSync(`${file}.returned`)) return
  if (!readFileSync(`${file}.returned`, 'utf8').startsWith(tf.OVERRIDE_MARK)) return
  if (c.values['dry-run']) return void c.report.record(`An interrupted return left ${file}.returned: it would be put back first`, 'dry-run')
  renameSync(`${file}.returned`, file)
  c.report.record(`An interrupted return left ${file}.returned: put it back, '${c.env.name}' is on its local state`, 'warning')
}

// ---- snapshot ---------------------------------------------------------------------------------------

async function snapshot(cfg: Config, report: StateReport, values: V): Promise<number> {
  const envs = values.env ? [findEnvironment(cfg, values.env)] : cfg.environments.filter((e) => e.backend?.type === 's3')
  let ok = 0
  let failed = 0
  for (const env of envs) {
    let s3: S3
    try {
      s3 = report.track(await openEnvS3(cfg, env)) // each environment its own endpoint
    } catch (e) {
      if (!(e instanceof DrError)) throw e
      failed++
      report.record(`${env.name}: not mirrored`, 'failed', [e.message])
      continue
    }
    try {
      const r = await snapshotOne(context('snapshot', cfg, env, s3, report, values), report, values)
      if (r === 'ok') ok++
      else if (r === 'failed') failed++
    } finally {
      s3.close()
    }
  }
  report.facts.stateDir = stateDir()
  return report.finish({ exitCode: failed ? 1 : 0, summary: `Done: ${ok} mirrored, ${failed} failed (mirror: ${stateDir()}).` })
}

async function snapshotOne(c: Ctx, report: Report, values: V): Promise<'ok' | 'failed' | 'skipped'> {
  const env = c.env
  {
    const got = await getText(c.s3, c.bucket, c.key).catch((e: unknown) => (classify(e) === 'not-found' ? undefined : Promise.reject(s3Error(e, c.s3, `reading ${c.url}`))))
    if (!got) {
      report.record(`${env.name}: no state in ${c.url} yet`, 'skipped')
      return 'skipped'
    }
    const r = tryParseState(got.text)
    if (!r.ok) {
      report.record(`${env.name}: ${c.url}`, 'failed', [`not valid state (${r.reason}); not mirrored`])
      return 'failed'
    }
    if (values['dry-run']) report.record(`${env.name}: serial ${r.state.serial} → ${mirrorDir(env.name, c.workspace)}`, 'dry-run')
    else {
      const m = mirrorState(env.name, c.workspace, got.text, r.state)
      report.record(`${env.name}: serial ${r.state.serial} → ${m.file}${m.created ? '' : ' (already there)'}`, 'ok')
    }
    return 'ok'
  }
}

// ---- shared checks and helpers ----------------------------------------------------------------------

async function verifyS3Answers(c: Ctx): Promise<void> {
  const answer = await probe(c.s3, c.bucket)
  if (answer === 'up') return
  if (answer === 'unreachable') {
    const copies = localCopies(c.env.name, c.workspace)
    throw new DrError('prerequisites', `${notAnswering(c.s3)}.`, copies[0]
      ? `A local copy exists (serial ${copies[0].state.serial}, ${copies[0].file}): npm run restore:state -- fallback ${envFlags(c)}`
      : `There is no local copy either: npm run restore:state -- fallback ${envFlags(c)} explains how to rebuild the state.`)
  }
  throw s3Error(Object.assign(new Error(answer), { name: answer === 'credentials' ? 'AccessDenied' : answer === 'no-bucket' ? 'NoSuchBucket' : answer }), c.s3, `checking bucket ${c.bucket}`)
}

function noStateInS3(c: Ctx): DrError {
  return new DrError('prerequisites', `There is no state at ${c.url} (no version, no delete marker).`, 'Check --env and --workspace. If MinIO was rebuilt empty, push the newest local copy back: see docs/restore-state.md, "MinIO rebuilt empty".')
}

function refuseWhileFallback(c: Ctx): void {
  const o = tf.readOverride(c.env.dir)
  if (o.state !== 'absent') throw new DrError('prerequisites', `'${c.env.name}' is on a local backend (${o.file}): restoring the S3 state would not be used.`, `Run npm run restore:state -- return ${envFlags(c)} first.`)
}

/** EF-006: the state about to be replaced, kept in the mirror (mode 0600). Returns the file. */
function saveSafetyCopy(c: Ctx, text: string): string {
  const r = tryParseState(text)
  if (r.ok) return mirrorState(c.env.name, c.workspace, text, r.state).file
  const file = join(mirrorDir(c.env.name, c.workspace), `invalid-${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
  writePrivate(file, text)
  return file
}

function mirrorCurrent(c: Ctx, current: VersionInfo | undefined): void {
  const text = (current as (VersionInfo & { text?: string }) | undefined)?.text
  if (c.values['dry-run'] || !current?.state || text === undefined) return
  mirrorState(c.env.name, c.workspace, text, current.state)
}

function copyPrivate(from: string, to: string): string {
  writePrivate(to, readFileSync(from)) // from === to: the same bytes, the mode tightened
  return `${from} → ${to}`
}

/** terraform plan as verification: 0 no changes, changes are a warning (exit 0), failure exit 5. */
async function verifyPlan(c: Ctx): Promise<number> {
  try {
    const p = await c.report.step('terraform plan -detailed-exitcode', async (d) => {
      const r = await tf.plan(c.env.dir, tfOpts(c))
      d.push(r.summary)
      return r
    })
    if (p.exitCode === 2) c.report.record(`terraform plan: ${p.summary}`, 'warning', [...p.changes, 'review these before the next apply'])
    c.report.facts.plan = p
    return 0
  } catch (e) {
    if (e instanceof DrError) return 5
    throw e
  }
}

function tfOpts(c: Ctx): tf.TfRunOptions {
  return { creds: c.creds, workspace: c.workspace }
}
function wsFlag(c: Ctx): string {
  return c.workspace === 'default' ? '' : ` --workspace ${shQuote(c.workspace)}`
}
/** `--env NAME [--workspace W]`, each value quoted for copy-paste into a shell. */
function envFlags(c: Ctx): string {
  return `--env ${shQuote(c.env.name)}${wsFlag(c)}`
}
function iso(d: Date): string {
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z')
}
