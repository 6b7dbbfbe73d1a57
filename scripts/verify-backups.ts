#!/usr/bin/env node
// verify:backups (US5) — prove every vzdump file and every Terraform state version is restorable data.
// Read-only: it changes nothing on the node or in S3, so it asks for no confirmation.
//
//   npm run -s verify:backups                       # every backup file on every node, plus missing/stale
//   npm run -s verify:backups -- --vmid 101         # one guest
//   npm run -s verify:backups -- --states           # also every state version of every environment
//   npm run -s verify:backups -- --metrics /var/lib/prometheus/node-exporter/homelab_dr.prom   # cron
//   npm run -s verify:backups -- --restore-test --yes          # also boot each newest good backup (docs/test-restore.md)
//
// Exit codes: 0 everything good · 1 a file or state version failed · 5 nothing failed but a guest's
// backup is missing or stale (or could not be verified) · 4 node or S3 unreachable · 2 usage.
import { parseVmid, humanSize, type Backup } from '../lib/backups.ts'
import type { CommandSpec } from '../lib/args.ts'
import { findNode, loadConfig, stateStore, workspacesInS3, type Config } from '../lib/config.ts'
import { DrError, usageError } from '../lib/errors.ts'
import { renderMetrics, writeAtomic } from '../lib/metrics.ts'
import { isJsonMode, mark, say } from '../lib/output.ts'
import { progress } from '../lib/progress.ts'
import { Pve, kindWord } from '../lib/pve.ts'
import { Report } from '../lib/report.ts'
import { listVersions, getText, openS3, s3Error } from '../lib/s3.ts'
import { Ssh } from '../lib/ssh.ts'
import { stateKey } from '../lib/state.ts'
import { testHook } from '../lib/env.ts'
import { fileFilter, parseRestoreTestArgs, runRestoreTests } from '../lib/restore-test.ts'
import { defineTask } from '../lib/task.ts'
import {
  DEFAULT_MAX_AGE_HOURS, NODE_SCRIPT, clock, expectedGuests, fileItem, guestItem, linkOlderGood, nodeInput, parseNodeLine, stateChecks, unansweredItem, worst,
  type FileItem, type GuestItem, type Item, type StateItem, type Status,
} from '../lib/verify.ts'

const spec = {
  id: 'verify:backups',
  summary: 'Check every vzdump file on the node and every Terraform state version is restorable data.',
  description: `US5. Read-only; asks nothing.
1. On each node (one SSH connection), every backup file of every backup storage is checked ON the node,
   in parallel across its cores: size (non-zero, as listed), compression stream (zstd/gzip/lzop/bzip2),
   content (VMA header + extents via \`vma verify\`; LXC tar lists and holds ./etc/vzdump/pct.conf),
   checksum (<archive>.sha256 or SHA256SUMS, when present), and the vzdump .log (no ERROR:, finished).
2. Every guest of /cluster/resources and of the backup jobs needs a good backup younger than
   --max-age (default: the job's schedule + 2 h, else 26 h); a missing or stale one is a warning.
3. With --states: every version of every environment's state object downloads, is non-empty JSON
   with version, serial and lineage.
--dry-run checks metadata only (size, log): no archive is read, no state version downloaded.
Exit 0 only when everything is good; 1 when something failed; 5 when only warnings (missing/stale).`,
  positionals: [],
  options: {
    node: { type: 'string', value: 'NAME', description: 'only this node (default: every node in the config)' },
    vmid: { type: 'string', value: 'N', description: 'only this guest\'s backups' },
    storage: { type: 'string', value: 'S', description: 'only this backup storage' },
    states: { type: 'boolean', description: 'also check every Terraform state version in S3' },
    'no-files': { type: 'boolean', description: 'skip the node (files, missing/stale); use with --states' },
    'max-age': { type: 'string', value: 'HOURS', description: 'a backup older than this is stale (default: from the job schedule, else 26)' },
    metrics: { type: 'string', value: 'FILE', description: 'write Prometheus textfile-collector metrics to FILE (atomically)' },
    // ---- test restores (lib/restore-test.ts, docs/test-restore.md) ----
    'restore-test': { type: 'boolean', description: 'also restore each guest\'s newest good backup into a scratch ID, isolated, prove it boots, destroy it (--vmid N,N… to choose)' },
    'scratch-range': { type: 'string', value: 'FIRST-LAST', description: 'VMIDs the test restores may use (default 9000-9099); never an existing one' },
    'memory-cap': { type: 'string', value: 'MiB', description: 'memory of each test copy at most (default: half of the node\'s free memory / --parallel)' },
    parallel: { type: 'string', value: 'N', description: 'test restores at a time (default 1)' },
    'scratch-storage': { type: 'string', value: 'S', description: 'storage for the test copies\' disks (default: where the backup\'s disks were)' },
    'boot-timeout': { type: 'string', value: 'SECONDS', description: 'how long a test copy may take to prove it booted (default 300)' },
  },
  examples: [
    'npm run -s verify:backups',
    'npm run -s verify:backups -- --vmid 101 --max-age 30',
    'npm run -s verify:backups -- --states --no-files --json',
    'npm run -s verify:backups -- --metrics /var/lib/prometheus/node-exporter/homelab_dr.prom',
    'npm run -s verify:backups -- --restore-test --vmid 101,110 --yes --metrics /var/lib/prometheus/node-exporter/homelab_dr.prom',
  ],
} satisfies CommandSpec

/** The progress spinner while files are checked: item lines clear it first (on a terminal). */
let spinner: { stop(): void } | undefined

export const task = defineTask(spec, async ({ values }) => {
  // Arguments: usage errors before any I/O
  const restoreTest = parseRestoreTestArgs(values) // --restore-test: its --vmid may list several guests
  const vmid = values.vmid === undefined ? undefined : restoreTest ? fileFilter(restoreTest) : parseVmid(values.vmid)
  const maxAge = values['max-age'] === undefined ? undefined : parseHours(values['max-age'])
  if (values['no-files'] && !values.states) throw usageError('Nothing to check: --no-files skips the node, so add --states.')
  if (values['no-files'] && (values.node || values.storage || values.vmid || values['max-age'])) throw usageError('--node, --storage, --vmid and --max-age need the node: drop --no-files.')
  if (values.storage !== undefined && !/^[A-Za-z][A-Za-z0-9._-]*$/.test(values.storage)) throw usageError(`Invalid --storage ${JSON.stringify(values.storage)}: a Proxmox storage ID.`)
  const cfg = await loadConfig(values['tf-dir'], { lenient: values['no-files'] }) // --no-files: no node needed
  const nodes = values.node ? [findNode(cfg, values.node)] : cfg.nodes
  const report = new Report('verify:backups')
  const started = Date.now()
  const now = nowSeconds(started)
  const items: Item[] = []
  const planned = { states: 0 } // --dry-run
  const notices: string[] = []
  const line = (text: string) => { clearSpinner(); say(text) }

  // Files on each node, then missing/stale
  if (!values['no-files']) {
    const facts = await Promise.all(nodes.map((n) => listNode(n, values.storage, vmid, notices)))
    // The guests and backup jobs (for missing/stale) are asked now, beside the file checks, not after them
    const first = facts[0]!
    const expected = Promise.all([first.pve.resources(), first.pve.backupJobs()])
    expected.catch(() => {}) // awaited below; a failure surfaces there
    for (const n of facts) report.facts[`node:${n.pve.node}`] = { storages: n.storages, files: n.backups.length, bytes: n.backups.reduce((s, b) => s + b.size, 0) }
    for (const n of notices) line(`${mark.warn} ${n}`)
    { // check every file, streaming a line per file as the node finishes it
      const total = { files: facts.reduce((s, n) => s + n.backups.length, 0), bytes: facts.reduce((s, n) => s + n.backups.reduce((t, b) => t + b.size, 0), 0) }
      const done = { files: 0, bytes: 0 }
      const spin = progress('Verifying')
      spinner = spin
      const onItem = (f: FileItem) => {
        done.files++
        done.bytes += f.size
        spin.update(`${done.files}/${total.files} files, ${humanSize(done.bytes)} of ${humanSize(total.bytes)}`)
        items.push(f)
        line(fileLine(f))
      }
      try {
        await Promise.all(facts.map((n) => checkFiles(n.pve, n.backups, n.dumpDirs, values['dry-run'] ? 'meta' : 'full', onItem)))
      } finally {
        spin.stop()
        spinner = undefined
      }
    }
    const files = items.filter((i): i is FileItem => i.kind === 'file')
    const [resources, jobs] = await expected
    const nodeNames = facts.map((n) => n.pve.node)
    let guests = expectedGuests(resources.filter((r) => nodeNames.includes(r.node)), jobs, maxAge)
    if (vmid !== undefined) guests = guests.filter((g) => g.vmid === vmid)
    if (restoreTest?.vmids) guests = guests.filter((g) => restoreTest.vmids!.includes(g.vmid)) // --restore-test --vmid N,N…
    if (vmid !== undefined && guests.length === 0) guests = [{ vmid, type: facts.flatMap((n) => n.backups)[0]?.type, name: undefined, maxAgeHours: maxAge ?? DEFAULT_MAX_AGE_HOURS }]
    for (const g of guests) {
      const item = guestItem(g, files, now)
      items.push(item)
      line(guestLine(item))
    }
    report.facts.jobs = jobs.map((j) => ({ id: j.id, schedule: j.schedule, enabled: j.enabled }))
    // SSH commands per node: constant, whatever the number of files (the benchmark reads this)
    for (const n of facts) Object.assign(report.facts[`node:${n.pve.node}`] as object, { sshCommands: n.pve.ssh.commands })
    for (const n of facts) await n.pve.ssh.close()
  }

  // Test restores (--restore-test): each guest's newest good backup restored in isolation, booted, destroyed
  const tested = restoreTest ? await runRestoreTests(cfg, nodes[0]!, restoreTest, items.filter((i): i is FileItem => i.kind === 'file'), report) : undefined
  if (tested) report.facts.restoreTests = tested.results

  // State versions of every environment (US5.2)
  if (values.states) planned.states = await checkStates(cfg, items, line, Boolean(values['dry-run']))

  // Summary: what to restore instead of a damaged file, counts, metrics, report
  const files = items.filter((i): i is FileItem => i.kind === 'file')
  linkOlderGood(files)
  const damaged = files.filter((f) => f.status === 'failed')
  if (damaged.length) {
    line('')
    line('Damaged backups, and the next older good backup of the same guest:')
    for (const f of damaged) line(`  ${kindWord(f.type)} ${f.vmid} ${f.file} → ${f.nextOlderGood ?? 'no older good backup'}`)
  }
  const count = (s: Status) => items.filter((i) => i.status === s).length
  const failed = count('failed')
  const warnings = count('warning') + notices.length
  const verifyExit = failed ? 1 : warnings ? 5 : 0
  const exitCode = [1, 4, 5].find((c) => c === verifyExit || c === tested?.exitCode) ?? 0 // restore tests: worst first
  const seconds = (Date.now() - started) / 1000
  const summary = `${values['dry-run'] ? `${mark.dry} metadata only (size, log; no archive read${planned.states ? `, ${planned.states} state versions not downloaded` : ''}): ` : ''}${items.length} checked, ${count('ok')} ok, ${warnings} warnings, ${failed} failed in ${clock(seconds)}${tested ? `; ${tested.summary}` : ''}`
  report.facts.items = items
  report.facts.notices = notices
  report.facts.counts = { checked: items.length, ok: count('ok'), warnings, failed }
  if (values.metrics && !values['dry-run']) {
    writeAtomic(values.metrics, renderMetrics(items, { finishedAt: Date.now(), durationSeconds: seconds, exitCode }) + (tested?.metrics ?? ''))
    report.facts.metricsFile = values.metrics
  }
  const next = damaged.length ? ['Restore from a good backup: npm run -s restore:vm -- <vmid> --backup <volid>'] : []
  return report.finish({ exitCode, summary, next })
}, import.meta.url)

// ---- the node ----

function clearSpinner(): void {
  if (spinner && process.stderr.isTTY && !isJsonMode()) process.stderr.write('\r\x1b[2K')
}

interface NodeFacts {
  pve: Pve
  storages: string[]
  backups: Backup[]
  /** storage → its dump folder on the node (from `pvesm path` of one of its backups). */
  dumpDirs: Map<string, string>
}

async function listNode(target: Config['nodes'][number], only: string | undefined, vmid: number | undefined, notices: string[]): Promise<NodeFacts> {
  const pve = await Pve.connect(new Ssh(target))
  const all = (await pve.storages('backup')).filter((s) => s.content.includes('backup') && s.enabled)
  const wanted = only ? all.filter((s) => s.storage === only) : all
  if (only && wanted.length === 0) throw new DrError('prerequisites', `Storage '${only}' on node '${pve.node}' is not an enabled backup storage. Backup storages: ${all.map((s) => s.storage).join(', ') || 'none'}.`)
  const active = wanted.filter((s) => s.active)
  for (const s of wanted.filter((x) => !x.active)) notices.push(`storage ${s.storage} on node ${pve.node} is not active: its backups were not checked`)
  const dumpDirs = new Map<string, string>()
  const lists = await Promise.all(active.map(async (s) => {
    const list = await pve.backups(s.storage, vmid)
    const sample = list[0]
    if (sample) { // one `pvesm path` per storage, never per file
      const path = await pve.path(sample.volid)
      dumpDirs.set(s.storage, path.slice(0, path.lastIndexOf('/')))
    }
    return list
  }))
  return { pve, storages: active.map((s) => s.storage), backups: lists.flat(), dumpDirs }
}

/** All files of one node in ONE ssh command: the node checks them in parallel and streams results. */
async function checkFiles(pve: Pve, backups: Backup[], dumpDirs: Map<string, string>, mode: 'full' | 'meta', onItem: (f: FileItem) => void): Promise<void> {
  const pending = new Map<number, Backup>()
  const jobs = backups.flatMap((backup, id) => {
    const path = `${dumpDirs.get(backup.storage)}/${backup.file}`
    if (/[\t\n]/.test(path)) { onItem(unansweredItem(pve.node, backup, 'its path holds a tab or newline')); return [] }
    pending.set(id, backup)
    return [{ id, path, backup }]
  })
  if (jobs.length === 0) return
  let buffer = ''
  const take = (text: string) => {
    buffer += text
    let nl: number
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const r = parseNodeLine(buffer.slice(0, nl))
      buffer = buffer.slice(nl + 1)
      const backup = r && pending.get(r.id)
      if (!r || !backup) continue
      pending.delete(r.id)
      onItem(fileItem(pve.node, backup, r))
    }
  }
  const bytes = backups.reduce((s, b) => s + b.size, 0)
  const r = await pve.ssh.runScript(NODE_SCRIPT, ['0', mode], {
    input: nodeInput(jobs, (b) => dumpDirs.get(b.storage)!),
    onStdout: take,
    timeoutMs: 600_000 + Math.ceil(bytes / 20e6) * 1000, // ≥ 20 MB/s, plus ten minutes
  })
  take('\n')
  const why = r.exitCode === 0 ? 'the node gave no result' : `the node's check stopped (exit ${r.exitCode}): ${r.stderr.trim().split('\n').at(-1) ?? ''}`
  for (const b of pending.values()) onItem(unansweredItem(pve.node, b, why))
}

function fileLine(f: FileItem): string {
  const sym = f.status === 'ok' ? mark.ok : f.status === 'failed' ? mark.fail : mark.warn
  const bad = f.checks.filter((c) => c.status === 'failed' || c.status === 'warning')
  return `${sym} ${kindWord(f.type)} ${f.vmid} ${f.file} ${humanSize(f.size)}${bad.length ? ': ' + bad.map((c) => `${c.name}: ${c.detail ?? c.status}`).join('; ') : ''}`
}

function guestLine(g: GuestItem): string {
  const who = `${g.type ? kindWord(g.type) : 'guest'} ${g.vmid}${g.name ? ` (${g.name})` : ''}`
  return `${g.status === 'ok' ? mark.ok : mark.warn} ${who}: ${g.detail}${g.status !== 'ok' && g.lastGood ? ` — ${g.lastGood.volid}` : ''}`
}

// ---- state versions ----

async function checkStates(cfg: Config, items: Item[], line: (t: string) => void, dryRun: boolean): Promise<number> {
  let planned = 0
  const envs = cfg.environments.filter((e) => e.backend?.type === 's3')
  if (envs.length === 0) throw new DrError('prerequisites', 'No environment has an s3 backend: there is no state to check.', 'See docs/configuration.md.')
  for (const env of envs) {
    // Each environment its own endpoint and credentials; every workspace's state (env:/<w>/<key>).
    const store = stateStore(cfg, env)
    const s3 = await openS3({ endpoint: store.endpoint, accessKey: store.accessKey, secretKey: store.secretKey, region: store.region, timeoutMs: 10_000 })
    try {
      let workspaces: string[]
      try {
        workspaces = ['default', ...new Set([...env.workspaces, ...(await workspacesInS3(s3, env))])]
      } catch (e) {
        throw s3Error(e, s3, `listing the workspaces of ${env.bucket}/${env.workspaceKeyPrefix}/`)
      }
      for (const workspace of workspaces) {
      const stateObject = stateKey(env.key!, workspace, env.workspaceKeyPrefix)
      let versions
      try {
        versions = await listVersions(s3, env.bucket!, stateObject)
      } catch (e) {
        throw s3Error(e, s3, `listing the versions of ${env.bucket}/${stateObject}`)
      }
      if (workspace !== 'default' && versions.length === 0) continue
      const base = { kind: 'state' as const, env: workspace === 'default' ? env.name : `${env.name}/${workspace}`, bucket: env.bucket!, key: stateObject }
      const latest = versions.find((v) => v.isLatest)
      if (!versions.length || latest?.deleteMarker) {
        const item: StateItem = { ...base, versionId: latest?.versionId ?? '-', lastModified: latest ? iso(latest.lastModified) : '-', isLatest: true, size: 0, status: 'warning', checks: [{ name: 'current version', status: 'warning', detail: versions.length ? 'the state object is deleted (a delete marker is its current version)' : 'no state object' }] }
        items.push(item)
        line(stateLine(item))
      }
      const real = versions.filter((v) => !v.deleteMarker)
      if (dryRun) {
        for (const v of real) planned++, line(`${mark.dry} would check state ${env.name} version ${v.versionId}`)
        continue
      }
      await pool(real, 6, async (v) => {
        let text: string | undefined
        let error: string | undefined
        try {
          text = (await getText(s3, env.bucket!, stateObject, v.versionId)).text
        } catch (e) {
          error = s3Error(e, s3, 'downloading').message
        }
        const { checks, serial } = stateChecks(text, error)
        const item: StateItem = { ...base, versionId: v.versionId, lastModified: iso(v.lastModified), isLatest: v.isLatest, size: text === undefined ? v.size : Buffer.byteLength(text), status: worst(checks.map((c) => c.status)), checks, ...(serial === undefined ? {} : { serial }) }
        items.push(item)
        line(stateLine(item))
      })
      }
    } finally {
      s3.close()
    }
  }
  return planned
}

function stateLine(s: StateItem): string {
  const sym = s.status === 'ok' ? mark.ok : s.status === 'failed' ? mark.fail : mark.warn
  const bad = s.checks.filter((c) => c.status !== 'ok')
  if (s.versionId === '-') return `${sym} state ${s.env} ${s.bucket}/${s.key}: ${bad.map((c) => c.detail).join('; ')}`
  const what = `${sym} state ${s.env} version ${s.versionId} (${s.lastModified}${s.isLatest ? ', current' : ''}) ${humanSize(s.size)}`
  return `${what}${s.serial !== undefined ? ` serial ${s.serial}` : ''}${bad.length ? ': ' + bad.map((c) => `${c.name}: ${c.detail ?? c.status}`).join('; ') : ''}`
}

// ---- small helpers ----

/** Now, for the age checks; the lab's tests pin it with the HDR_NOW test hook (lib/env.ts). */
function nowSeconds(started: number): number {
  const hook = testHook('HDR_NOW')
  if (hook === undefined) return Math.floor(started / 1000)
  const t = Date.parse(hook)
  if (Number.isNaN(t)) throw usageError(`HDR_NOW=${JSON.stringify(hook)}: not a date.`)
  return Math.floor(t / 1000)
}

function parseHours(text: string): number {
  if (!/^\d+(\.\d+)?$/.test(text) || Number(text) <= 0) throw usageError(`Invalid --max-age ${JSON.stringify(text)}: a number of hours, e.g. 26.`)
  return Number(text)
}

function iso(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z')
}

async function pool<T>(list: T[], size: number, fn: (x: T) => Promise<void>): Promise<void> {
  let i = 0
  await Promise.all(Array.from({ length: Math.min(size, list.length) }, async () => { while (i < list.length) await fn(list[i++]!) }))
}
