// Test restores (verify:backups --restore-test): prove each guest's newest good backup BOOTS, in
// isolation, without touching production. Each backup is restored through the shared guest-restore
// flow (preflightRestore + planRestore: the same checks, space test and restore command as restore:vm)
// into a free scratch VMID of --scratch-range, as a copy (--unique 1). Before it starts the copy is
// made harmless in one `qm set`/`pct set`: every netN link_down=1 (cable pulled: it cannot clash with
// the original's address or MAC), passthrough devices dropped (hostpciN, usbN; devN for a container),
// onboot 0, protection and hookscript removed, memory capped, and notes naming it a test restore.
// Then it starts and must prove it booted: the QEMU guest agent answers (and guest-get-osinfo), or
// `pct exec -- true` runs; then the guest's own checks from terraform.tfvars. The scratch guest is
// destroyed afterwards whatever happened (finally; on SIGINT/SIGTERM too), and a reaper first removes
// what an interrupted run left: guests in the scratch range whose notes start with SCRATCH_NOTE —
// never anything else.
//
//   const opts = parseRestoreTestArgs(values)            // usage errors before any I/O
//   const run = await runRestoreTests(cfg, target, opts, files, report, line)
//   run.results: per guest restorable yes/no, backup, restore and boot seconds; run.exitCode; run.metrics
//
// Exported API: parseRestoreTestArgs, runRestoreTests, reapScratch, harmlessSettings, guestChecks,
// restoreTestMetrics, SCRATCH_NOTE and the types RestoreTestOptions, RestoreTestResult, RestoreTestRun.
import { readFileSync } from 'node:fs'
import { DrError, usageError } from './errors.ts'
import type { Config } from './config.ts'
import { commandLine, Ssh, type NodeTarget } from './ssh.ts'
import { Pve, kindWord, lastLine, tool, type GuestConfig, type Resource } from './pve.ts'
import { humanSize, parseVmid, sortBackups, type Backup, type GuestType } from './backups.ts'
import { agentEnabled, label, waitForAgent } from './guest.ts'
import { isSafetyBackup, planRestore, preflightRestore, type GuestRestoreRequest, type RunState } from './guest-restore.ts'
import { execute } from './plan.ts'
import type { Report } from './report.ts'
import { confirm, declined } from './prompt.ts'
import { Exposition } from './metrics.ts'
import { mark, say } from './output.ts'
import { INTERRUPT_SIGNALS, onInterrupt } from './task.ts'
import type { FileItem } from './verify.ts'

/** The start of a scratch guest's notes: with the range, how the reaper knows a guest is ours. */
export const SCRATCH_NOTE = 'homelab-dr test restore'

export interface RestoreTestOptions {
  /** The guests to test (--vmid N[,N…]); undefined: every guest covered by a backup job. */
  vmids: number[] | undefined
  /** --scratch-range FIRST-LAST (default 9000-9099). */
  range: { first: number; last: number }
  /** --memory-cap MiB; undefined: half of the node's free memory, shared by the --parallel copies. */
  memoryCapMiB: number | undefined
  parallel: number
  /** --storage for the copies' disks (undefined: where the backup's disks were). */
  storage: string | undefined
  bootTimeoutSec: number
  dryRun: boolean
  yes: boolean
  force: boolean
  /** --metrics FILE: the previous file gives each guest's last success when this run fails. */
  metricsFile: string | undefined
}

export interface RestoreTestResult {
  vmid: number
  type: GuestType | undefined
  name: string | undefined
  /** ok: restored and booted; failed: the backup did not restore or boot; refused: not tried (space, IDs, no good backup); dry-run. */
  status: 'ok' | 'failed' | 'warning' | 'refused' | 'dry-run'
  restorable: boolean
  backup: string | undefined
  scratchId: number | undefined
  restoreSeconds: number | undefined
  bootSeconds: number | undefined
  /** How the boot was proven: 'guest agent', 'Debian GNU/Linux 12 (bookworm)', 'command …', 'port 80'. */
  proof: string[]
  reason: string | undefined
  /** The scratch guest is gone (checked on the node), or was never created. */
  cleanedUp: boolean
}

export interface RestoreTestRun {
  results: RestoreTestResult[]
  reaped: number[]
  /** 0 all restorable · 1 a backup did not restore or boot, or a scratch guest could not be destroyed · 4 refused · 5 warnings. */
  exitCode: number
  summary: string
  /** Prometheus families to append to verify:backups' metrics. */
  metrics: string
}

// ---- arguments ----

export interface RestoreTestFlags {
  'restore-test'?: boolean
  vmid?: string
  'scratch-range'?: string
  'memory-cap'?: string
  parallel?: string
  'scratch-storage'?: string
  'boot-timeout'?: string
  'no-files'?: boolean
  'dry-run'?: boolean
  yes?: boolean
  force?: boolean
  metrics?: string
}

/** The restore-test options, or undefined without --restore-test; usage errors before any I/O. */
export function parseRestoreTestArgs(v: RestoreTestFlags): RestoreTestOptions | undefined {
  const own = ['scratch-range', 'memory-cap', 'parallel', 'scratch-storage', 'boot-timeout'] as const
  if (!v['restore-test']) {
    const stray = own.filter((k) => v[k] !== undefined)
    if (stray.length) throw usageError(`--${stray.join(', --')} ${stray.length > 1 ? 'go' : 'goes'} with --restore-test.`)
    return undefined
  }
  if (v['no-files']) throw usageError('--restore-test restores the newest good backup files: drop --no-files.')
  const vmids = v.vmid === undefined ? undefined : [...new Set(v.vmid.split(',').map((s) => parseVmid(s.trim())))]
  const m = /^(\d+)-(\d+)$/.exec(v['scratch-range'] ?? '9000-9099')
  const range = m ? { first: Number(m[1]), last: Number(m[2]) } : undefined
  if (!range || range.first < 100 || range.last > 999_999_999 || range.first > range.last) throw usageError(`Invalid --scratch-range ${JSON.stringify(v['scratch-range'])}: FIRST-LAST, two VMIDs (100 to 999999999), e.g. 9000-9099.`)
  if (vmids?.some((id) => id >= range.first && id <= range.last)) throw usageError(`--vmid names an ID inside the scratch range ${range.first}-${range.last}: test restores only go there; pick another --scratch-range.`)
  const int = (flag: string, text: string | undefined, dflt: number | undefined, min: number): number | undefined => {
    if (text === undefined) return dflt
    if (!/^\d+$/.test(text) || Number(text) < min) throw usageError(`Invalid --${flag} ${JSON.stringify(text)}: a whole number, at least ${min}.`)
    return Number(text)
  }
  const storage = v['scratch-storage']
  if (storage !== undefined && !/^[A-Za-z][A-Za-z0-9._-]*$/.test(storage)) throw usageError(`Invalid --scratch-storage ${JSON.stringify(storage)}: a Proxmox storage ID.`)
  return {
    vmids,
    range,
    memoryCapMiB: int('memory-cap', v['memory-cap'], undefined, 16),
    parallel: int('parallel', v.parallel, 1, 1)!,
    storage,
    bootTimeoutSec: int('boot-timeout', v['boot-timeout'], 300, 1)!,
    dryRun: Boolean(v['dry-run']),
    yes: Boolean(v.yes),
    force: Boolean(v.force),
    metricsFile: v.metrics,
  }
}

/** The single --vmid verify:backups' own file checks may filter on (a list: check every file). */
export const fileFilter = (o: RestoreTestOptions): number | undefined => (o.vmids?.length === 1 ? o.vmids[0] : undefined)

// ---- the run ----

interface Candidate {
  vmid: number
  type: GuestType | undefined
  name: string | undefined
  backup: Backup | undefined
  /** This run's file check read the backup end to end and passed it (not so in --dry-run: metadata only). */
  read: boolean
  why?: string
}

/** Chooses, plans, confirms, reaps, then tests each guest (--parallel at a time). */
export async function runRestoreTests(cfg: Config, target: NodeTarget, opts: RestoreTestOptions, files: FileItem[], report: Report): Promise<RestoreTestRun> {
  const pve = await Pve.connect(new Ssh(target))
  const guard = new ScratchGuard(target)
  try {
    // Facts: the guests, their newest good backup, what is left in the scratch range, the memory cap
    say('')
    const resources = await pve.resources()
    const candidates = await chooseGuests(pve, opts, resources, files)
    const leftovers = await findLeftovers(pve, opts.range, resources)
    const capMiB = opts.memoryCapMiB ?? (await defaultCap(pve, opts.parallel))

    // Plan and consent: this creates and destroys guests (in the scratch range only)
    printTestPlan(pve, opts, candidates, leftovers, capMiB)
    if (!opts.dryRun && !(await confirm(`Run ${candidates.length} test restore${candidates.length === 1 ? '' : 's'} on node '${pve.node}'?`, { yes: opts.yes, force: opts.force }))) declined('the test restores')

    // Reaper: what an interrupted run left (range AND notes), then each guest
    const reaped = await reapScratch(pve, leftovers, report, opts.dryRun)
    guard.install()
    const ids = new IdPool(opts.range, resources.filter((r) => !reaped.includes(r.vmid)).map((r) => r.vmid))
    const results: RestoreTestResult[] = []
    await pool(candidates, opts.parallel, async (c) => {
      const r = await testOne(pve, cfg, opts, c, capMiB, ids, guard, report)
      if (guard.interrupted) await guard.halt() // the signal handler cleans up and exits: no verdict from a cut-short test
      results.push(r)
    })
    results.sort((a, b) => a.vmid - b.vmid)
    return finishRun(results, reaped, opts)
  } finally {
    guard.uninstall()
    await pve.ssh.close()
  }
}

/** Default: every guest of an enabled backup job (all: every guest on the node), outside the scratch range. */
async function chooseGuests(pve: Pve, opts: RestoreTestOptions, resources: Resource[], files: FileItem[]): Promise<Candidate[]> {
  const inRange = (id: number) => id >= opts.range.first && id <= opts.range.last
  let vmids = opts.vmids
  if (!vmids) {
    const jobs = (await pve.backupJobs()).filter((j) => j.enabled)
    const all = jobs.some((j) => j.all)
    vmids = [...new Set([...(all ? resources.filter((r) => r.node === pve.node && !r.template).map((r) => r.vmid) : []), ...jobs.flatMap((j) => j.vmids)])].filter((id) => !inRange(id)).sort((a, b) => a - b)
  }
  const out: Candidate[] = []
  for (const vmid of vmids) {
    const r = resources.find((x) => x.vmid === vmid)
    const good = files.filter((f) => f.vmid === vmid && f.status !== 'failed')
    const bad = files.filter((f) => f.vmid === vmid && f.status === 'failed').length
    // safety backups (homelab-dr's own, before an overwrite) hold the broken state: skip them; the listing has the notes
    const listed = (await Promise.all([...new Set(good.map((f) => f.storage))].map((s) => pve.backups(s, vmid)))).flat()
    const regular = sortBackups(listed.filter((b) => !isSafetyBackup(b) && good.some((f) => f.volid === b.volid)))
    const backup = regular[0]
    const why = backup ? undefined : files.some((f) => f.vmid === vmid) ? `no good backup (${bad} failed verification${good.length ? ', the others are safety backups' : ''})` : 'no backup'
    // the archive's last content check (vma clusters, pct.conf) passed: the preflight need not read it all again
    const read = Boolean(backup && files.find((f) => f.volid === backup.volid)?.checks.some((k) => (k.name === 'vma clusters' || k.name === 'pct.conf') && k.status === 'ok'))
    out.push({ vmid, type: backup?.type ?? r?.type, name: r?.name, backup, read, why })
  }
  return out
}

/** Half of the node's free memory (MemAvailable when the API gives it), shared by the parallel copies. */
async function defaultCap(pve: Pve, parallel: number): Promise<number> {
  const path = `/nodes/${pve.node}/status`
  const s = await pve.get(path)
  const mem = (s && typeof s === 'object' ? (s as { memory?: Record<string, unknown> }).memory : undefined) ?? {}
  const free = typeof mem.available === 'number' ? mem.available : typeof mem.free === 'number' ? mem.free : undefined
  if (free === undefined) throw new DrError('failed', `Unexpected answer from the node to ${path}: no memory.free.`)
  const cap = Math.floor(free / 2 / parallel / 1048576)
  if (cap < 16) throw new DrError('prerequisites', `Node '${pve.node}' has ${humanSize(free)} of memory free: too little for a test restore (the cap would be ${cap} MiB). Nothing was changed.`, 'Free some memory, or set the cap with --memory-cap MiB.')
  return cap
}

function printTestPlan(pve: Pve, opts: RestoreTestOptions, cands: Candidate[], leftovers: Leftover[], capMiB: number): void {
  say(`Test restores on node '${pve.node}': scratch IDs ${opts.range.first}-${opts.range.last}, memory cap ${capMiB} MiB, ${opts.parallel === 1 ? 'one at a time' : `${opts.parallel} at a time`}`)
  for (const l of leftovers.filter((x) => x.ours)) say(`  destroy first: ${label(l.type, l.vmid, l.config)}, left by an interrupted test restore`)
  for (const l of leftovers.filter((x) => !x.ours)) say(`  ${mark.warn} ID ${l.vmid} is in the scratch range but is not a test restore: left alone, not used`)
  for (const c of cands) say(`  ${c.type ? kindWord(c.type) : 'guest'} ${c.vmid}${c.name ? ` (${c.name})` : ''}: ${c.backup ? c.backup.file : `${mark.fail} ${c.why}`}`)
  say('  Each copy: qmrestore/pct restore --unique 1 into a free scratch ID; every netN link_down=1; no hostpciN/usbN/devN;')
  say(`  onboot 0, not protected, memory ≤ ${capMiB} MiB; started, its boot proven, then destroyed (--purge 1).`)
  say('')
}

// ---- one guest ----

async function testOne(pve: Pve, cfg: Config, opts: RestoreTestOptions, c: Candidate, capMiB: number, ids: IdPool, guard: ScratchGuard, report: Report): Promise<RestoreTestResult> {
  const who = `${c.type ? kindWord(c.type) : 'guest'} ${c.vmid}${c.name ? ` (${c.name})` : ''}`
  const res: RestoreTestResult = { vmid: c.vmid, type: c.type, name: c.name, status: 'failed', restorable: false, backup: c.backup?.volid, scratchId: undefined, restoreSeconds: undefined, bootSeconds: undefined, proof: [], reason: undefined, cleanedUp: true }
  const done = (status: RestoreTestResult['status'], reason?: string) => {
    if (guard.interrupted) return res // cut short by Ctrl-C/SIGTERM: not a verdict on the backup
    res.status = status
    res.reason = reason
    res.restorable = status === 'ok' || status === 'warning'
    report.record(resultLine(who, res), status === 'ok' ? 'ok' : status === 'dry-run' ? 'dry-run' : status === 'warning' ? 'warning' : 'failed', reason ? [reason] : [])
    return res
  }
  if (!c.backup || !c.type) return done('refused', c.why ?? 'no backup')
  const type = c.type
  const id = ids.take()
  if (id === undefined) return done('refused', `no free ID left in the scratch range ${opts.range.first}-${opts.range.last}`)
  res.scratchId = id
  const kind = kindWord(type)
  try {
    // Preflight and restore: the shared flow's checks (archive intact, space on the storage, the ID free)
    const req: GuestRestoreRequest = { task: 'verify:backups --restore-test', vmid: c.vmid, targetId: id, backup: c.backup.volid, backupStorage: c.backup.storage, archiveRead: c.read, storage: opts.storage, start: false, yes: true }
    const run: RunState = { phase: 'nothing changed', undo: [] }
    let facts
    try {
      facts = await preflightRestore(pve, cfg, req, report)
    } catch (e) {
      if (e instanceof DrError && e.kind === 'prerequisites') return done('refused', e.message)
      throw e
    }
    if (facts.occupant) return done('refused', `scratch ID ${id} was taken meanwhile (${label(facts.occupant.type, id, facts.occupant.config)}): not touched`)
    const plan = planRestore(pve, cfg, req, facts, run)
    const capped = (conf: GuestConfig) => harmlessSettings(type, conf, capMiB, scratchNotes(c, id))
    if (opts.dryRun) {
      await execute(plan, report, true)
      report.record(`Make ${kind} ${id} harmless: ${tool(type)} set ${id} ${commandLine(capped(facts.backupConf))}`, 'dry-run')
      report.record(`Start ${kind} ${id}, prove it boots, destroy it: ${tool(type)} destroy ${id} --purge 1`, 'dry-run')
      return done('dry-run')
    }
    guard.add(id, type) // from here the ID may hold our guest: destroy it, whatever happens
    const t0 = performance.now()
    try {
      await execute(plan, report, false)
    } catch (e) {
      if (e instanceof DrError) return done('failed', e.message)
      throw e
    }
    res.restoreSeconds = seconds(t0)

    // Harmless before it starts: cable pulled, no passthrough, no autostart, not protected, memory capped, notes
    const conf = await pve.config(type, id)
    if (!conf) return done('failed', `${kind} ${id} is gone after its restore`)
    const set = await pve.ssh.run([tool(type), 'set', String(id), ...capped(conf)], { timeoutMs: 120_000 })
    // not the backup's fault (e.g. a node too old for a CT's link_down): unproven, not disproven
    if (set.exitCode !== 0) return done('refused', `restored, but ${kind} ${id} could not be made harmless (${tool(type)} set: ${lastLine(set.stderr || set.stdout)}), so it was not started`)

    // Start and prove it boots
    const t1 = performance.now()
    const start = await pve.ssh.run([tool(type), 'start', String(id)], { timeoutMs: 10 * 60_000 })
    if (start.exitCode !== 0) return done('failed', `restored, but ${kind} ${id} did not start: ${lastLine(start.stderr || start.stdout)}`)
    const boot = await proveBoot(pve, type, id, conf, opts.bootTimeoutSec * 1000)
    res.proof.push(...boot.proof)
    if (boot.failure) return done('failed', `restored, but it did not boot: ${boot.failure}`)
    res.bootSeconds = seconds(t1)

    // The guest's own checks (terraform.tfvars restore_test_checks)
    const failures: string[] = []
    for (const chk of guestChecks(cfg, c.vmid, c.name)) {
      const r = await runCheck(pve, type, id, chk)
      if (r) failures.push(r)
      else res.proof.push(chk.kind === 'port' ? `port ${chk.port} listening` : `\`${chk.command}\` ok`)
    }
    if (failures.length) return done('failed', `booted, but ${failures.join('; ')}`)
    if (boot.warning) return done('warning', boot.warning)
    return done('ok')
  } finally {
    if (!opts.dryRun && guard.has(id) && !guard.interrupted) {
      const gone = await destroyScratch(pve, type, id)
      guard.remove(id)
      res.cleanedUp = gone === true
      if (gone !== true) {
        res.status = 'failed'
        res.reason = `${res.reason ? `${res.reason}; ` : ''}the scratch ${kind} ${id} could not be destroyed (${gone}): destroy it by hand: ${tool(type)} stop ${id}; ${tool(type)} destroy ${id} --purge 1`
        report.record(`Scratch ${kind} ${id} destroyed`, 'failed', [res.reason])
      } else report.record(`Scratch ${kind} ${id} destroyed`, 'ok')
    }
  }
}

const seconds = (t0: number) => Math.round((performance.now() - t0) / 100) / 10

function scratchNotes(c: Candidate, id: number): string {
  return `${SCRATCH_NOTE} of ${c.type ? kindWord(c.type) : 'guest'} ${c.vmid}${c.name ? ` (${c.name})` : ''} from ${c.backup?.file ?? '?'}, as ${id}, ${new Date().toISOString().replace(/\.\d{3}Z$/, 'Z')}: homelab-dr destroys it after the test; safe to destroy.`
}

/**
 * The `qm set`/`pct set` arguments that make a restored copy harmless before its first start: every
 * netN with link_down=1, passthrough removed (VM hostpciN/usbN, CT devN), no hookscript, onboot 0, not
 * protected, memory (and a VM's balloon) at most capMiB, and the notes. Pure: tested on samples.
 */
export function harmlessSettings(type: GuestType, conf: GuestConfig, capMiB: number, notes: string): string[] {
  const keys = Object.keys(conf).sort()
  const drop = keys.filter((k) => (type === 'qemu' ? /^(hostpci|usb)\d+$/ : /^dev\d+$/).test(k) || k === 'hookscript' || k === 'protection')
  const args: string[] = []
  if (drop.length) args.push('--delete', drop.join(','))
  for (const k of keys.filter((x) => /^net\d+$/.test(x))) {
    const v = conf[k]!.split(',').filter((p) => !/^link_down=/.test(p))
    args.push(`--${k}`, [...v, 'link_down=1'].join(','))
  }
  args.push('--onboot', '0')
  const mem = Number(/(?:^|current=)(\d+)/.exec(conf.memory ?? '')?.[1] ?? 512)
  if (mem > capMiB) args.push('--memory', String(capMiB))
  const balloon = Number(conf.balloon ?? 0)
  if (type === 'qemu' && balloon > Math.min(mem, capMiB)) args.push('--balloon', String(Math.min(mem, capMiB)))
  args.push('--description', notes)
  return args
}

/** Boot proof: VM — the guest agent answers, then guest-get-osinfo; CT — `pct exec N -- true`. */
async function proveBoot(pve: Pve, type: GuestType, id: number, conf: GuestConfig, deadlineMs: number): Promise<{ proof: string[]; failure?: string; warning?: string }> {
  if (type === 'lxc') {
    const end = Date.now() + deadlineMs
    for (;;) {
      const r = await pve.ssh.run(['pct', 'exec', String(id), '--', 'true'], { timeoutMs: 60_000 })
      if (r.exitCode === 0) return { proof: ['pct exec true'] }
      if (Date.now() >= end) return { proof: [], failure: `\`pct exec ${id} -- true\` did not succeed within ${Math.round(deadlineMs / 1000)} s (${lastLine(r.stderr || r.stdout)})` }
      await sleep(1000)
    }
  }
  const status = await pve.status('qemu', id)
  if (status !== 'running') return { proof: [], failure: `VM ${id} is ${status}, not running` }
  if (!agentEnabled(conf)) return { proof: ['running'], warning: 'VM running, but its boot is not proven: no QEMU guest agent is configured (agent: 1, and qemu-guest-agent in the guest)' }
  const a = await waitForAgent(pve, id, deadlineMs)
  if (a !== 'ok') return { proof: [], failure: `the QEMU guest agent did not answer within ${Math.round(deadlineMs / 1000)} s (${a})` }
  const os = await pve.ssh.run(['qm', 'guest', 'cmd', String(id), 'get-osinfo'], { timeoutMs: 30_000 })
  const pretty = os.exitCode === 0 ? /"pretty-name"\s*:\s*"([^"]*)"/.exec(os.stdout)?.[1] : undefined
  return { proof: ['guest agent', ...(pretty ? [pretty] : [])] }
}

export type GuestCheck = { kind: 'command'; command: string } | { kind: 'port'; port: number }

/**
 * The guest's own checks, from terraform.tfvars (keyed by VMID or name):
 *   restore_test_checks = { "101" = { commands = ["systemctl is-active nginx"], ports = [80] } }
 */
export function guestChecks(cfg: Config, vmid: number, name: string | undefined): GuestCheck[] {
  const all = cfg.vars.get('restore_test_checks')?.value
  if (!all || typeof all !== 'object' || Array.isArray(all)) return []
  const m = all as Record<string, unknown>
  const mine = m[String(vmid)] ?? (name ? m[name] : undefined)
  if (!mine || typeof mine !== 'object' || Array.isArray(mine)) return []
  const o = mine as { commands?: unknown; ports?: unknown }
  const list = (x: unknown) => (Array.isArray(x) ? x : x === undefined ? [] : [x])
  return [
    ...list(o.commands).filter((c): c is string => typeof c === 'string' && c.trim() !== '').map((command) => ({ kind: 'command' as const, command })),
    ...list(o.ports).map(Number).filter((p) => Number.isInteger(p) && p > 0 && p < 65536).map((port) => ({ kind: 'port' as const, port })),
  ]
}

/** One check inside the guest (CT: pct exec; VM: qm guest exec through the agent). Undefined when it passed. */
async function runCheck(pve: Pve, type: GuestType, id: number, chk: GuestCheck): Promise<string | undefined> {
  const inner = chk.kind === 'command' ? ['sh', '-c', chk.command] : ['ss', '-Hltn', `sport = :${chk.port}`]
  const argv = type === 'lxc' ? ['pct', 'exec', String(id), '--', ...inner] : ['qm', 'guest', 'exec', String(id), '--', ...inner]
  const r = await pve.ssh.run(argv, { timeoutMs: 120_000 })
  let code = r.exitCode
  let outText = r.stdout
  if (type === 'qemu' && r.exitCode === 0) {
    // qm guest exec prints the agent's answer as JSON: exitcode, out-data
    try {
      const j = JSON.parse(r.stdout) as { exitcode?: number; 'out-data'?: string }
      code = j.exitcode ?? 255
      outText = j['out-data'] ?? ''
    } catch {
      code = 255
    }
  }
  if (chk.kind === 'port') return code === 0 && outText.trim() !== '' ? undefined : `nothing listens on port ${chk.port} inside it`
  return code === 0 ? undefined : `\`${chk.command}\` failed inside it (exit ${code}${lastLine(r.stderr) !== 'no output' ? `: ${lastLine(r.stderr)}` : ''})`
}

/** Stop (if running) and destroy with --purge; true when the node no longer has it, else the reason. */
async function destroyScratch(pve: Pve, type: GuestType, id: number): Promise<true | string> {
  const t = tool(type)
  const status = await pve.status(type, id).catch((e: unknown) => (e instanceof Error ? e.message : String(e)))
  if (status === 'missing') return true
  if (status === 'running') await pve.ssh.run([t, 'stop', String(id)], { timeoutMs: 10 * 60_000 })
  const r = await pve.ssh.run([t, 'destroy', String(id), '--purge', '1'], { timeoutMs: 10 * 60_000 })
  const after = await pve.status(type, id).catch(() => 'unknown')
  return after === 'missing' ? true : lastLine(r.stderr || r.stdout)
}

function resultLine(who: string, r: RestoreTestResult): string {
  const file = r.backup?.split('/').at(-1)
  if (r.status === 'dry-run') return `Test restore of ${who}: ${file} → scratch ${r.scratchId}`
  if (r.status === 'refused') return `Test restore of ${who}: not tried`
  const times = [r.restoreSeconds !== undefined ? `restored in ${r.restoreSeconds} s` : undefined, r.bootSeconds !== undefined ? `booted in ${r.bootSeconds} s` : undefined].filter(Boolean).join(', ')
  const verdict = r.status === 'failed' ? 'NOT restorable' : 'restorable'
  return `${who}: ${verdict} — ${file} as ${r.scratchId}${times ? `, ${times}` : ''}${r.proof.length ? ` (${r.proof.join(', ')})` : ''}`
}

// ---- the reaper ----

interface Leftover { vmid: number; type: GuestType; config: GuestConfig; ours: boolean }

/** Guests in the scratch range; `ours` only when their notes start with SCRATCH_NOTE. */
async function findLeftovers(pve: Pve, range: RestoreTestOptions['range'], resources: Resource[]): Promise<Leftover[]> {
  const out: Leftover[] = []
  for (const r of resources.filter((x) => x.vmid >= range.first && x.vmid <= range.last)) {
    const config = (await pve.config(r.type, r.vmid)) ?? {}
    out.push({ vmid: r.vmid, type: r.type, config, ours: decodeNotes(config.description ?? '').startsWith(SCRATCH_NOTE) })
  }
  return out
}

const decodeNotes = (d: string) => { try { return decodeURIComponent(d) } catch { return d } }

/** Destroys the scratch guests an interrupted run left (in the range AND noted as ours); returns their IDs. */
export async function reapScratch(pve: Pve, leftovers: Leftover[], report: Report, dryRun: boolean): Promise<number[]> {
  const reaped: number[] = []
  for (const l of leftovers.filter((x) => x.ours)) {
    const what = `${label(l.type, l.vmid, l.config)}, left by an interrupted test restore`
    if (dryRun) { report.record(`Destroy ${what}`, 'dry-run'); continue }
    const gone = await destroyScratch(pve, l.type, l.vmid)
    if (gone !== true) throw new DrError('failed', `Could not destroy ${what}: ${gone}.`, `On the node: ${tool(l.type)} stop ${l.vmid}; ${tool(l.type)} destroy ${l.vmid} --purge 1`)
    report.record(`Destroyed ${what}`, 'ok')
    reaped.push(l.vmid)
  }
  return reaped
}

// ---- scratch IDs and interruption ----

/** Free IDs of the range, never one the node has, never one handed out twice. */
class IdPool {
  private readonly used: Set<number>
  constructor(private readonly range: RestoreTestOptions['range'], existing: number[]) { this.used = new Set(existing) }
  take(): number | undefined {
    for (let id = this.range.first; id <= this.range.last; id++) if (!this.used.has(id)) { this.used.add(id); return id }
    return undefined
  }
}

/**
 * The scratch guests alive right now. On SIGINT/SIGTERM it destroys them over a fresh SSH connection
 * (Ctrl-C also reaches the multiplexed one), then lets the task's own interrupt handler report and exit.
 */
class ScratchGuard {
  private readonly active = new Map<number, GuestType>()
  private readonly saved = new Map<string, Array<(...a: unknown[]) => void>>()
  private handler: ((sig: NodeJS.Signals) => void) | undefined
  /** A signal came: the handler owns the scratch guests now and will exit. */
  interrupted = false
  constructor(private readonly target: NodeTarget) {}
  add(id: number, type: GuestType): void { this.active.set(id, type) }
  has(id: number): boolean { return this.active.has(id) }
  remove(id: number): void { this.active.delete(id) }

  install(): void {
    // The task's own interrupt handler (lib/task.ts) ends the process at once: hold it back until the
    // scratch guests are destroyed, then hand it the signal with the note of what was cleaned up.
    for (const sig of INTERRUPT_SIGNALS) {
      this.saved.set(sig, process.listeners(sig) as Array<(...a: unknown[]) => void>)
      process.removeAllListeners(sig)
    }
    let busy = false
    this.handler = (sig) => {
      if (busy) return
      busy = true
      this.interrupted = true
      void this.cleanup().then((note) => {
        onInterrupt(() => note)
        for (const l of this.saved.get(sig) ?? []) l(sig)
        process.exit(3) // no task handler (imported by dr): still stop here
      })
    }
    for (const sig of INTERRUPT_SIGNALS) process.on(sig, this.handler)
  }

  /** Never resolves: the interrupted flow stops where it is while the handler cleans up and exits. */
  halt(): Promise<never> { return new Promise<never>(() => {}) }

  uninstall(): void {
    if (!this.handler) return
    for (const sig of INTERRUPT_SIGNALS) {
      process.off(sig, this.handler)
      for (const l of this.saved.get(sig) ?? []) process.on(sig, l)
    }
    this.saved.clear()
    this.handler = undefined
  }

  private async cleanup(): Promise<string> {
    if (this.active.size === 0) return 'No scratch guest was left on the node.'
    const ssh = new Ssh(this.target)
    const done: string[] = []
    const left: string[] = []
    try {
      const pve = await Pve.connect(ssh)
      for (const [id, type] of this.active) {
        const gone = await destroyScratch(pve, type, id).catch((e: unknown) => String(e))
        ;(gone === true ? done : left).push(`${kindWord(type)} ${id}`)
      }
    } catch {
      left.push(...[...this.active].map(([id, type]) => `${kindWord(type)} ${id}`).filter((x) => !done.includes(x)))
    } finally {
      await ssh.close()
    }
    return `${done.length ? `Scratch ${done.join(', ')} destroyed.` : ''}${left.length ? ` ${left.join(', ')} could not be destroyed: the next --restore-test run removes ${left.length > 1 ? 'them' : 'it'} (its notes say "${SCRATCH_NOTE}").` : ''}`.trim()
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function pool<T>(list: T[], size: number, fn: (x: T) => Promise<void>): Promise<void> {
  let i = 0
  await Promise.all(Array.from({ length: Math.min(size, list.length) }, async () => { while (i < list.length) await fn(list[i++]!) }))
}

// ---- outcome and metrics ----

function finishRun(results: RestoreTestResult[], reaped: number[], opts: RestoreTestOptions): RestoreTestRun {
  const n = (s: RestoreTestResult['status']) => results.filter((r) => r.status === s).length
  const failed = n('failed')
  const exitCode = failed ? 1 : n('refused') ? 4 : n('warning') ? 5 : 0
  const summary = opts.dryRun
    ? `${mark.dry} ${results.length} test restore${results.length === 1 ? '' : 's'} planned, none run`
    : `test restores: ${n('ok') + n('warning')} of ${results.length} restorable and booted${failed ? `, ${failed} NOT restorable` : ''}${n('refused') ? `, ${n('refused')} not tried` : ''}`
  let previous = ''
  if (opts.metricsFile) try { previous = readFileSync(opts.metricsFile, 'utf8') } catch { /* first run */ }
  return { results, reaped, exitCode, summary, metrics: opts.dryRun ? '' : restoreTestMetrics(results, previous, Date.now()) }
}

/**
 * homelab_dr_restore_test_* families. The last success of a guest that failed (or was not tried)
 * this run is carried over from the previous metrics file, so the alert sees its true age.
 */
export function restoreTestMetrics(results: RestoreTestResult[], previousText: string, nowMs: number): string {
  const lab = (r: RestoreTestResult) => ({ vmid: String(r.vmid), type: r.type ?? 'unknown' })
  const last = (r: RestoreTestResult): number => {
    if (r.status === 'ok' || r.status === 'warning') return Math.floor(nowMs / 1000)
    const m = new RegExp(`^homelab_dr_restore_test_last_success_timestamp_seconds\\{vmid="${r.vmid}"[^}]*\\} (\\d+)$`, 'm').exec(previousText)
    return m ? Number(m[1]) : 0
  }
  const m = new Exposition()
  m.family('restore_test_success', '1 when the newest good backup of the guest restored and booted in isolation in the last test restore.', results.map((r) => [lab(r), r.restorable ? 1 : 0]))
  m.family('restore_test_restore_seconds', 'How long the last test restore of the guest took to restore (RTO trend; NaN when it did not restore).', results.map((r) => [lab(r), r.restoreSeconds ?? NaN]))
  m.family('restore_test_boot_seconds', 'How long the restored copy took from start to proven boot (NaN when it did not boot).', results.map((r) => [lab(r), r.bootSeconds ?? NaN]))
  m.family('restore_test_last_success_timestamp_seconds', 'When a backup of the guest was last proven to restore and boot (0: never).', results.map((r) => [lab(r), last(r)]))
  return m.text()
}
