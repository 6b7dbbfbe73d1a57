// Bringing a guest back from a vzdump backup, once for every task (restore:vm, rebuild:minio,
// rebuild:monitoring, dr): preflight of the backup and the target, the plan, a safety backup, stop,
// restore, start, and the proof (status, ping, SSH, guest agent). Each task keeps its own story —
// its arguments, its words, its extra checks — and calls this for the guest itself.
//
//   const run: RunState = { phase: 'nothing changed', undo: [] }
//   try {
//     const r = await restoreGuest(pve, cfg, { vmid: cfg.monitoring.vmid, task: 'rebuild:monitoring', yes, force, dryRun }, report, run)
//     // r.status: 'dry-run' | 'restored' | 'unverified' (restored, a check failed: exit 5)
//   } catch (e) {
//     if (e instanceof NoBackupError) … // no backup of that VMID: rebuild from scratch instead
//     if (e instanceof DrError) return report.fail(e, run.undo) // run.undo: the safety backup and how to put it back
//   }
//
// Exported API (docs/architecture.md): restoreGuest, preflightRestore, planRestore, confirmRestore,
// retarget, NoBackupError, isSafetyBackup, SAFETY_NOTE and the types GuestRestoreRequest,
// RestoreFacts, GuestRestoreResult, RunState.
import { takeLock } from './lock.ts'
import { envSeconds } from './env.ts'
import { DrError } from './errors.ts'
import type { Config } from './config.ts'
import { commandLine } from './ssh.ts'
import { Pve, guestAddress, kindWord, lastLine, tool, type GuestConfig, type Storage } from './pve.ts'
import { backupLocalTime, humanSize, parseBackupName, pickBackup, sortBackups, type Backup, type DateWanted, type GuestType } from './backups.ts'
import { readOccupant, occupantRead, probeArchive, readArchiveConfig, verifyBeforeOverwrite, probeDescription, spaceNeeded, spaceFreed, guestAccess, agentEnabled, isProtected, label, guestName, verifyOnNode, waitForAgent, waitForPing, waitForSsh, type Occupant, type GuestAccess } from './guest.ts'
import { printPlan, execute, type Plan, type Action } from './plan.ts'
import type { Report } from './report.ts'
import { confirm, declined } from './prompt.ts'
import { progress } from './progress.ts'
import { say, mark } from './output.ts'

/** What a task asks for: a plain object, usually from its own arguments or the configuration. */
export interface GuestRestoreRequest {
  /** The task asking ('restore:vm', 'rebuild:monitoring', …): in the safety backup's notes. */
  task: string
  /** The guest whose backups are used. */
  vmid: number
  /** Restore as a copy under this ID (new MACs; vmid untouched). Default: vmid, in place. */
  targetId?: number
  /** This exact backup volid. Default: the latest regular backup (safety backups skipped), or of `date`. */
  backup?: string
  date?: DateWanted
  /** The storage holding the backups. Default: cfg.backupStorage (or the --backup volid's). */
  backupStorage?: string
  /** Where the restored disks go. Default: where they were. */
  storage?: string
  /** The caller read this very archive (`backup`) end to end in this run and it passed (verify:backups'
   *  file check, before a test restore): the preflight reads only its configuration, not all of it again. */
  archiveRead?: boolean
  /** Start and prove the guest afterwards. Default true. */
  start?: boolean
  /** Consent given (--yes), or given and go on past space warnings (--force). */
  yes?: boolean
  force?: boolean
  /** The same path with writes off: read-only probes run, mutating actions are recorded. */
  dryRun?: boolean
  /** How to reach the guest over SSH when the defaults do not fit (e.g. a VM whose sshd is on 2222). */
  access?: Partial<GuestAccess>
  /** --tf-dir, repeated in the undo command. */
  tfDir?: string
  /** When the data restore fails over an existing guest: restore its safety backup, start and prove it. Default true. */
  rollback?: boolean
}

/** What changed so far and how to undo it: for Ctrl-C and for failures. The caller owns it. */
export interface RunState {
  phase: string
  undo: string[]
  /** The safety backup's volid, once written and checked. */
  safety?: string
  /** What `qmrestore --start 1` printed after `Execute autostart`: qemu-server only warns when that start fails. */
  startSaid?: string[]
}

/** What preflight found: the backup, the target and its occupant, where disks go, how to prove it. */
export interface RestoreFacts {
  backup: Backup
  /** Newest first; for EC-4's "next older". */
  backups: Backup[]
  backupConf: GuestConfig
  archivePath: string
  backupStorage: string
  type: GuestType
  targetId: number
  /** What holds the target ID now (undefined: free). */
  occupant: Occupant | undefined
  /** The source guest when restoring a copy under another ID (for the address clash). */
  source: Occupant | undefined
  /** --storage for the restore command (undefined: qemu puts each disk back where it was). */
  storage: string | undefined
  storages: Storage[]
  unique: boolean
  /** Why the restored guest will not be started, if it will not. */
  noStartReason: string | undefined
  access: GuestAccess
  /** The checks after the start, in words ('status running', 'ping 10.0.0.1', …). */
  checks: string[]
  warnings: string[]
}

export interface GuestRestoreResult {
  /** dry-run: nothing changed; restored: restored and proven; unverified: restored, a check failed (exit 5). */
  status: 'dry-run' | 'restored' | 'unverified'
  facts: RestoreFacts
  /** `VM 200 (monitoring)` */
  what: string
  /** The volid of the safety backup taken before overwriting, if any. */
  safetyBackup: string | undefined
  /** The failed checks' sentences (status 'unverified'). */
  failures: string[]
  /** How it was proven, in words: `running and reachable (ping + SSH)`. */
  proven: string
  /** The safety backup and how to put it back (empty when nothing was overwritten). */
  undo: string[]
}

/** US1.4: there is no backup to restore. A caller can fall back (e.g. to a rebuild from scratch). */
export class NoBackupError extends DrError {
  readonly vmid: number
  readonly storage: string
  constructor(vmid: number, storage: string, node: string) {
    super('prerequisites', `No backup of ${vmid} on storage '${storage}' (node '${node}'): nothing to restore. Nothing was changed.`, `Check the vzdump jobs (pvesh get /cluster/backup on the node) or name a backup on another storage with --backup.`)
    this.vmid = vmid
    this.storage = storage
  }
}

export const SAFETY_NOTE = 'homelab-dr safety backup'
export const isSafetyBackup = (b: Backup) => (b.notes ?? '').startsWith(SAFETY_NOTE)

export interface RestoreOptions {
  /**
   * Asks for consent once the plan is printed. Returns revised facts to restore elsewhere (restore:vm's
   * EC-3 "next free ID"), or undefined to go on; throws to decline. Default: confirmRestore.
   */
  confirm?: (pve: Pve, req: GuestRestoreRequest, facts: RestoreFacts) => Promise<RestoreFacts | undefined>
}

/**
 * The whole flow: preflight (EF-001) → plan (EF-002; a dry run stops here, EF-007) → confirm →
 * safety backup (EF-006), stop, restore, start → prove (US1.1). Throws DrError for expected failures
 * (NoBackupError when there is no backup); `run` says what changed and how to undo it.
 */
export async function restoreGuest(pve: Pve, cfg: Config, req: GuestRestoreRequest, report: Report, run: RunState, opts: RestoreOptions = {}): Promise<GuestRestoreResult> {
  // One run at a time per guest (issue 12): a second restore of the same ID is refused naming the
  // holder. A dry run changes nothing and takes no lock.
  const lock = req.dryRun ? undefined : takeLock({ kind: 'guest', node: pve.node, vmid: req.targetId ?? req.vmid }, req.task)
  try {
    return await restoreLocked(pve, cfg, req, report, run, opts)
  } finally {
    lock?.release()
  }
}

async function restoreLocked(pve: Pve, cfg: Config, req: GuestRestoreRequest, report: Report, run: RunState, opts: RestoreOptions): Promise<GuestRestoreResult> {
  const facts = await preflightRestore(pve, cfg, req, report)

  let plan = planRestore(pve, cfg, req, facts, run)
  printPlan(plan)
  if (req.dryRun) {
    await execute(plan, report, true)
    report.record(`Verify: ${facts.checks.join(', ')}`, 'dry-run')
    return result('dry-run', facts, run, [])
  }

  const revised = await (opts.confirm ?? confirmRestore)(pve, req, facts)
  if (revised) {
    Object.assign(facts, revised)
    plan = planRestore(pve, cfg, req, facts, run)
    printPlan(plan)
  }

  report.facts.backup = facts.backup.volid
  report.facts.target = facts.targetId
  try {
    await execute(plan, report, false)
  } catch (e) {
    // The data restore failed over an existing guest (Proxmox leaves it without its disks): put the
    // safety backup back, start it, prove it, and report both (issue 12). --no-rollback leaves it.
    if (!(e instanceof RestoreFailed) || !run.safety || !facts.occupant) throw e
    if (req.rollback === false) throw new DrError('failed', `${e.message} Left as it is (--no-rollback): ${label(facts.occupant.type, facts.targetId, facts.occupant.config)} may have lost its disks.`)
    return await rollBack(pve, req, facts, run.safety, e, report, run)
  }

  const failures = await proveRestored(pve, facts, run, report)
  return result(failures.length ? 'unverified' : 'restored', facts, run, failures)
}

function result(status: GuestRestoreResult['status'], f: RestoreFacts, run: RunState, failures: string[]): GuestRestoreResult {
  const kind = kindWord(f.type)
  const proven = f.noStartReason ? `left stopped (${f.noStartReason})` : f.access.address ? 'running and reachable (ping + SSH)' : 'running (not checked over the network: no address known)'
  return {
    status,
    facts: f,
    what: `${kind} ${f.targetId}${guestName(f.backupConf) ? ` (${guestName(f.backupConf)})` : ''}`,
    safetyBackup: run.undo[0]?.replace(/^.*: /, ''),
    failures,
    proven,
    undo: run.undo,
  }
}

// ---- preflight ----

/** EF-001: every check one line; the first that fails throws, nothing changed. */
export async function preflightRestore(pve: Pve, cfg: Config, req: GuestRestoreRequest, report: Report): Promise<RestoreFacts> {
  const backupStorage = req.backupStorage ?? req.backup?.split(':')[0] ?? cfg.backupStorage
  const targetId = req.targetId ?? req.vmid
  // The first three checks' reads share one round trip (issue 14), made by the first; each check
  // still reads (and fails on) its own answer, in this order.
  const [storageList, backupList, targetNow] = pve.together([pve.storagesRead(), pve.backupsRead(backupStorage, req.vmid), occupantRead(pve, targetId)])
  const storages = await report.check(`Backup storage '${backupStorage}' active`, async () => verifyBackupStorage(pve, backupStorage, await storageList()))
  const backups = await report.check(`Backups of ${req.vmid} found`, async (d) => {
    const list = sortBackups(verifyBackupExists(pve, backupStorage, req.vmid, await backupList()))
    d.push(`${list.length} on '${backupStorage}', newest ${backupLocalTime(list[0]!).replace('T', ' ')}`)
    return list
  })
  let backup = await report.check('Backup chosen', async (d) => {
    const b = chooseBackup(backups, req)
    d.push(b.file)
    const skipped = req.backup ? [] : backups.filter((x) => isSafetyBackup(x) && x.ctime > b.ctime)
    if (skipped.length) d.push(`skipped ${skipped.length} newer safety backup${skipped.length > 1 ? 's' : ''} made by homelab-dr (name one with --backup to use it)`)
    return b
  })
  const type = backup.type
  const { occupant, source } = await report.check(`Target ${targetId} checked`, async () => {
    const occupant = await targetNow()
    verifyTypeMatches(type, targetId, occupant)
    verifyNotLockedOrProtected(occupant)
    const source = targetId !== req.vmid ? await readOccupant(pve, req.vmid) : undefined
    return { occupant, source }
  })

  // EC-4: read the archive end to end; when damaged, name it and offer the next older one.
  let backupConf: GuestConfig = {}
  let archivePath = ''
  for (;;) {
    try {
      ;[backupConf, archivePath] = await report.check(`Archive ${backup.file} intact`, async (d) => {
        const read = req.archiveRead === true && backup.volid === req.backup
        const { path, config: conf } = read ? await readArchiveConfig(pve, backup) : await probeArchive(pve, backup)
        d.push(`${humanSize(backup.size)}, ${read ? 'read end to end by this run\'s file check; its configuration read (pvesm extractconfig)' : `${probeDescription(backup)}: ok`}`)
        return [conf, path] as const
      })
      break
    } catch (e) {
      if (!(e instanceof DrError) || !/failed its integrity check/.test(e.message)) throw e
      backup = await offerOlder(backups, backup, e, req)
    }
  }

  const storage = restoreStorage(req, cfg, type, backupConf, storages)
  const warnings: string[] = []
  await report.check('Free space for the disks', async (d) => {
    d.push(...verifySpace(storages, backupConf, storage, occupant, backup, backupStorage, Boolean(req.force), warnings))
  })

  const unique = targetId !== req.vmid
  const access = { ...guestAccess(cfg, targetId, backupConf), ...definedOnly(req.access) }
  const noStartReason = req.start === false ? '--no-start was given' : clashReason(source, access)
  const checks = verificationChecks(type, backupConf, access, noStartReason)
  return { backup, backups, backupConf, archivePath, backupStorage, type, targetId, occupant, source, storage, storages, unique, noStartReason, access, checks, warnings }
}

const definedOnly = <T extends object>(o: T | undefined): Partial<T> => Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>

function verifyBackupStorage(pve: Pve, id: string, storages: Storage[]): Storage[] {
  const st = storages.find((s) => s.storage === id)
  if (!st) throw new DrError('prerequisites', `Backup storage '${id}' does not exist on node '${pve.node}' (storages there: ${storages.map((s) => s.storage).join(', ') || 'none'}).`, 'Set backup_storage in terraform.tfvars, or name the backup with --backup STORAGE:backup/FILE.')
  if (!st.enabled || !st.active) throw new DrError('prerequisites', `Backup storage '${id}' is not active on node '${pve.node}': its backups cannot be read. Nothing was changed.`, `Check that it is mounted and enabled (pvesm status on the node), then run this again.`)
  return storages
}

/** US1.4: no backup, clear error, nothing changed. */
function verifyBackupExists(pve: Pve, storage: string, vmid: number, list: Backup[]): Backup[] {
  if (list.length === 0) throw new NoBackupError(vmid, storage, pve.node)
  return list
}

/** US1.2 latest, US1.3 a day or a minute, or the exact --backup. */
function chooseBackup(list: Backup[], req: GuestRestoreRequest): Backup {
  if (req.backup) {
    const b = list.find((x) => x.volid === req.backup)
    if (!b) throw new DrError('prerequisites', `Backup ${req.backup} not found on node: it is not in the listing of storage '${req.backup.split(':')[0]}'.`, `List the backups with: npm run restore:vm -- ${req.vmid} --list`)
    return b
  }
  // A safety backup holds the guest as it was before an earlier restore — usually the broken state:
  // "the latest backup" means the latest regular one. --backup can still name a safety backup.
  const regular = list.filter((b) => !isSafetyBackup(b))
  return pickBackup(regular.length ? regular : list, req.date)
}

/** US1.6: a backup restores only over a guest of its own type. */
function verifyTypeMatches(type: GuestType, targetId: number, occupant: Occupant | undefined): void {
  if (occupant && occupant.type !== type) {
    throw new DrError('prerequisites', `The backup is of a ${type === 'qemu' ? 'VM' : 'container'}, but ID ${targetId} holds ${label(occupant.type, targetId, occupant.config)}: Proxmox cannot overwrite a guest of another type.`, `Restore it under a free ID with --target-id N (pvesh get /cluster/nextid gives one).`)
  }
}

function verifyNotLockedOrProtected(o: Occupant | undefined): void {
  if (!o) return
  const what = label(o.type, o.vmid, o.config)
  if (o.config.lock) throw new DrError('prerequisites', `${what} is locked (${o.config.lock}): a ${o.config.lock} may be in progress. Nothing was changed.`, `Wait for it to finish; if the lock is stale, clear it on the node (${tool(o.type)} unlock ${o.vmid}) and run this again.`)
  if (isProtected(o.config)) throw new DrError('prerequisites', `${what} is protected (protection: 1): Proxmox refuses to overwrite it. Nothing was changed.`, `Remove the protection on the node (${tool(o.type)} set ${o.vmid} --protection 0) if you mean to replace it, or restore a copy with --target-id N.`)
}

/** EC-4: the next older backup, if the operator takes it; else the error with the suggestion. */
async function offerOlder(backups: Backup[], bad: Backup, e: DrError, req: GuestRestoreRequest): Promise<Backup> {
  const older = backups.slice(backups.indexOf(bad) + 1)[0]
  if (!older) throw new DrError('prerequisites', `${e.message} There is no older backup of ${req.vmid} to fall back to. Nothing was changed.`)
  const when = backupLocalTime(older).replace('T', ' ')
  const hint = `Use the next older backup (${when}): npm run restore:vm -- ${req.vmid} --backup ${older.volid}${req.targetId ? ` --target-id ${req.targetId}` : ''}`
  say(`${mark.fail} ${e.message}`)
  const canAsk = Boolean(process.stdin.isTTY) && !req.yes && !req.force
  if (!canAsk) throw new DrError('prerequisites', `${e.message} Nothing was changed.`, hint)
  if (await confirm(`Use the next older backup, ${older.file} (${when}), instead?`, { yes: false, force: false })) return older
  throw new DrError('prerequisites', `${e.message} Nothing was changed.`, hint)
}

/** Where the disks go: --storage; else qemu disks go back where they were (if those storages exist), a CT's to its rootfs storage. */
function restoreStorage(req: GuestRestoreRequest, cfg: Config, type: GuestType, conf: GuestConfig, storages: Storage[]): string | undefined {
  if (req.storage) {
    if (!storages.some((s) => s.storage === req.storage)) throw new DrError('prerequisites', `Storage '${req.storage}' (--storage) does not exist on the node (there: ${storages.map((s) => s.storage).join(', ')}).`)
    return req.storage
  }
  const usable = (id: string | undefined) => id !== undefined && storages.some((s) => s.storage === id && s.active)
  const recorded = [...spaceNeeded(conf).keys()]
  if (type === 'lxc') {
    const rootfs = (conf.rootfs ?? '').split(':')[0]
    if (usable(rootfs)) return rootfs
  } else if (recorded.every(usable)) return undefined
  if (usable(cfg.guestStorage)) return cfg.guestStorage
  throw new DrError('prerequisites', `The backup's disks were on ${recorded.join(', ') || 'an unknown storage'}, which ${recorded.length > 1 ? 'are' : 'is'} not active on this node, and guest_storage is not set.`, 'Name the storage for the restored disks with --storage S.')
}

/** EC-2: compare each storage's `avail` with the disks the backup will write (and the safety backup). */
function verifySpace(storages: Storage[], conf: GuestConfig, storage: string | undefined, occupant: Occupant | undefined, backup: Backup, backupStorage: string, force: boolean, warnings: string[]): string[] {
  const details: string[] = []
  const need = spaceNeeded(conf, storage)
  const freed = spaceFreed(occupant?.config)
  const problems: string[] = []
  for (const [id, bytes] of need) {
    const st = storages.find((s) => s.storage === id)
    if (!st || !st.active) throw new DrError('prerequisites', `Storage '${id}' for the restored disks is ${st ? 'not active' : 'missing'} on the node.`, 'Name another with --storage S.')
    const back = freed.get(id) ?? 0
    const line = `'${id}': need ${humanSize(bytes)}, ${humanSize(st.avail)} free${back ? ` + ${humanSize(back)} from the disks it replaces` : ''}`
    details.push(line)
    if (st.avail + back < bytes) problems.push(`Not enough space on storage ${line}.`)
  }
  if (occupant) {
    const st = storages.find((s) => s.storage === backupStorage)
    if (st && st.avail < backup.size) problems.push(`Not enough space for the safety backup on '${backupStorage}': about ${humanSize(backup.size)} needed, ${humanSize(st.avail)} free.`)
  }
  if (problems.length && !force) throw new DrError('prerequisites', `${problems.join(' ')} Nothing was changed.`, 'Free some space, choose another storage with --storage S, or re-run with --force to try anyway.')
  for (const p of problems) warnings.push(`${p} Going on anyway (--force).`)
  return details
}

/** US1.7: a copy with the original's static address must not start while the original runs. */
function clashReason(source: Occupant | undefined, access: GuestAccess): string | undefined {
  if (!source || source.status !== 'running' || !access.address) return undefined
  if (guestAddress(source.config) !== access.address) return undefined
  return `its address ${access.address} is in use by ${label(source.type, source.vmid, source.config)}, which is running`
}

function verificationChecks(type: GuestType, conf: GuestConfig, access: GuestAccess, noStart: string | undefined): string[] {
  if (noStart) return ['config present, not started']
  const c = ['status running']
  if (access.address) c.push(`ping ${access.address}`, `ssh ${access.user}@${access.address}${access.port !== 22 ? `:${access.port}` : ''}`)
  if (type === 'qemu' && agentEnabled(conf)) c.push('guest agent ping')
  return c
}

/** EC-3: the same restore, as a copy under another (free) ID; the source stays as it is. */
export function retarget(req: GuestRestoreRequest, f: RestoreFacts, id: number): RestoreFacts {
  const source = f.occupant ?? f.source
  const noStartReason = req.start === false ? '--no-start was given' : clashReason(source, f.access)
  return { ...f, targetId: id, occupant: undefined, source, unique: true, noStartReason, checks: verificationChecks(f.type, f.backupConf, f.access, noStartReason) }
}

// ---- plan ----

/** The plan as data (EF-002): facts, warnings, and the actions in order, each with its node command. */
export function planRestore(pve: Pve, cfg: Config, req: GuestRestoreRequest, f: RestoreFacts, run: RunState): Plan {
  const kind = kindWord(f.type)
  const t = f.targetId
  const tools = f.type === 'qemu' ? ['qm'] : ['pct']
  const when = backupLocalTime(f.backup).replace('T', ' ')
  const o = f.occupant
  const actions: Action[] = []
  let safety: string | undefined

  if (o) {
    const notes = `${SAFETY_NOTE} of {{guestname}} before ${req.task} from ${f.backup.file}`
    // --remove 0: vzdump's default (remove 1) prunes by the storage's prune-backups at once, which
    // could delete the very backup chosen for the restore (issue 12).
    const argv = ['vzdump', String(t), '--storage', cfg.backupStorage, '--mode', 'snapshot', '--compress', 'zstd', '--notes-template', notes, '--remove', '0']
    actions.push({
      title: `Safety backup of ${label(o.type, t, o.config)}`,
      command: commandLine(argv),
      mutates: true,
      run: async (d) => {
        run.phase = `${label(o.type, t, o.config)} is unchanged; its safety backup was being written to '${cfg.backupStorage}'`
        const written = await safetyBackup(pve, argv, cfg.backupStorage, t)
        safety = written.volid
        // Before the stop: the chosen backup still there, the safety archive whole (issue 12).
        const file = safety.slice(safety.indexOf('/') + 1)
        const parsed = parseBackupName(file)
        try {
          await verifyBeforeOverwrite(pve, f.backup, f.archivePath, { volid: safety, file, format: parsed?.format ?? '', compression: parsed?.compression, path: written.path })
        } catch (e) {
          if (!(e instanceof DrError)) throw e
          throw new DrError('failed', `${e.message} ${label(o.type, t, o.config)} is unchanged.`, `Check the backup storage '${cfg.backupStorage}' (pvesm status, the vzdump log of ${file}), then run this again.`)
        }
        d.push(`${safety} (checked: ${probeDescription({ format: parsed?.format ?? '', compression: parsed?.compression })}: ok)`)
        run.undo = undoLines(req, f, safety)
        run.safety = safety
      },
    })
  }
  if (o && o.status !== 'stopped') {
    const argv = [...tools, 'stop', String(t)]
    actions.push({
      title: `Stop ${label(o.type, t, o.config)} (now ${o.status})`,
      command: commandLine(argv),
      mutates: true,
      run: async () => {
        run.phase = `${label(o.type, t, o.config)} was being stopped; its disks are unchanged`
        const r = await pve.ssh.run(argv, { timeoutMs: 10 * 60_000 })
        if (r.exitCode !== 0) throw new DrError('failed', `Could not stop ${kind} ${t}: ${lastLine(r.stderr || r.stdout)}. Its disks are unchanged.`)
      },
    })
  }
  // A VM is started by qmrestore itself (--start 1: one qm process and one round trip fewer, issue 14).
  // qemu-server's create_vm starts it once the restore is done and only warns if that fails (exit 0),
  // so the proof after it (status running) is what tells. A container keeps its own `pct start`:
  // pve-container's start after `pct restore` fails the whole task, which would read as a failed restore.
  const startedByRestore = f.type === 'qemu' && !f.noStartReason
  const restoreArgv = f.type === 'qemu'
    ? ['qmrestore', f.backup.volid, String(t), ...(o ? ['--force', '1'] : []), ...(f.storage ? ['--storage', f.storage] : []), ...(f.unique ? ['--unique', '1'] : []), ...(startedByRestore ? ['--start', '1'] : [])]
    : ['pct', 'restore', String(t), f.backup.volid, ...(o ? ['--force', '1'] : []), '--storage', f.storage ?? 'local', ...(f.unique ? ['--unique', '1'] : [])]
  actions.push({
    title: `Restore ${kind} ${t} from ${f.backup.file}${startedByRestore ? ' and start it' : ''}`,
    command: commandLine(restoreArgv),
    mutates: true,
    run: async (d) => {
      run.phase = o
        ? `${kind} ${t} was being restored: its old disks may already be gone (state unknown; check: ${tools[0]} status ${t})`
        : `${kind} ${t} was being restored: the ID may hold a half-restored guest (check: ${tools[0]} status ${t})`
      const r = await restoreWithProgress(pve, restoreArgv, f)
      d.push(...r.lines)
      run.startSaid = r.startSaid
      run.phase = startedByRestore ? `${kind} ${t} is restored and started; its checks were running` : `${kind} ${t} is restored${f.noStartReason ? ' and stopped' : ''}`
    },
  })
  if (!f.noStartReason && !startedByRestore) {
    const argv = [...tools, 'start', String(t)]
    actions.push({
      title: `Start ${kind} ${t}`,
      command: commandLine(argv),
      mutates: true,
      run: async () => {
        const r = await pve.ssh.run(argv, { timeoutMs: 10 * 60_000 })
        if (r.exitCode !== 0) throw new DrError('failed', `${kind} ${t} is restored but did not start: ${lastLine(r.stderr || r.stdout)}.`)
        run.phase = `${kind} ${t} is restored and started; its checks were running`
      },
    })
  }

  const facts: Plan['facts'] = [
    ['Node', `${pve.node} (${pve.ssh.target.user}@${pve.ssh.target.host}:${pve.ssh.target.port})`],
    ['Backup', f.backup.volid],
    ['Taken', `${when} (node time), ${humanSize(f.backup.size)}${f.backup.protected ? ', protected' : ''}${f.backup.notes ? `, notes: ${f.backup.notes}` : ''}`],
    ['Guest in backup', `${label(f.type, f.backup.vmid, f.backupConf)}, ${f.type}`],
    ['Target', o ? `${label(o.type, t, o.config)}, ${o.status} — will be overwritten` : `${kind} ${t}, free${f.unique ? ` — a copy of ${f.backup.vmid} with new MAC addresses; ${f.backup.vmid} is not touched` : ''}`],
    ['Disks to', f.storage ?? 'where they were (as recorded in the backup)'],
    ['Address', f.access.address ? `${f.access.address} (${f.access.source})` : 'unknown (no static ip in the backup, none in guest_addresses)'],
    ['Then', f.noStartReason ? `leave it stopped: ${f.noStartReason}` : `start it and check: ${f.checks.join(', ')}`],
  ]
  const warnings = [...f.warnings]
  if (o && o.status === 'running') warnings.push(`${label(o.type, t, o.config)} is running: it will be stopped after its safety backup.`)
  if (!f.noStartReason && !f.access.address) warnings.push('No address for the guest: ping and SSH cannot be checked (add it to guest_addresses in terraform.tfvars).')
  return { title: `Restore ${kind} ${t} on node '${pve.node}' from the backup of ${when}`, facts, actions, warnings }
}

// ---- confirm ----

/** The default consent: one yes/no question (US1.5); no terminal and no --yes/--force refuses. */
export async function confirmRestore(_pve: Pve, req: GuestRestoreRequest, f: RestoreFacts): Promise<undefined> {
  const o = f.occupant
  const when = backupLocalTime(f.backup).replace('T', ' ')
  const question = o ? `Overwrite ${label(o.type, o.vmid, o.config)} with the backup of ${when}?` : `Restore ${kindWord(f.type)} ${f.targetId} from the backup of ${when}?`
  if (!(await confirm(question, { yes: Boolean(req.yes), force: Boolean(req.force) }))) declined(o ? `overwriting ${label(o.type, o.vmid, o.config)}` : 'the restore')
  return undefined
}

// ---- act ----

/**
 * EF-006: vzdump the guest about to be overwritten; returns the new backup's volid and the path vzdump
 * printed for it (`creating vzdump archive '/…/FILE'`; undefined when it printed none we can use).
 */
async function safetyBackup(pve: Pve, argv: string[], storage: string, vmid: number): Promise<{ volid: string; path: string | undefined }> {
  const p = progress(`Safety backup of ${vmid}`)
  let r
  try {
    r = await pve.ssh.run(argv, { timeoutMs: 6 * 3600_000, onStdout: (c) => { const m = /(\d+)%/.exec(c); if (m) p.update(`${m[1]}%`) } })
  } finally {
    p.stop()
  }
  const printed = /creating (?:vzdump )?archive '([^']+)'/.exec(r.stdout)?.[1]
  const file = printed?.split('/').at(-1)
  if (r.exitCode !== 0 || !file) {
    const why = r.stdout.split('\n').filter((l) => /^ERROR:/.test(l)).at(-1)?.trim() ?? lastLine(r.stderr)
    throw new DrError('failed', `The safety backup of ${vmid} failed (${why}), so nothing was restored: ${vmid} is unchanged.`, 'Fix the cause (space on the backup storage, a lock on the guest), then run this again.')
  }
  return { volid: `${storage}:backup/${file}`, path: printed!.startsWith('/') ? printed : undefined }
}

async function restoreWithProgress(pve: Pve, argv: string[], f: RestoreFacts): Promise<{ lines: string[]; startSaid: string[] | undefined }> {
  const p = progress(`Restoring ${kindWord(f.type)} ${f.targetId}`)
  const t0 = Date.now()
  const tick = setInterval(() => p.update(`(${Math.round((Date.now() - t0) / 1000)} s)`), 1000)
  let r
  try {
    // Restores may run for hours on big disks; a damaged VMA header alone takes 60 s to fail.
    r = await pve.ssh.run(argv, {
      timeoutMs: 12 * 3600_000,
      onStdout: (c) => { const m = /progress (\d+)% \(read (\d+) bytes/.exec(c); if (m) p.update(`${m[1]}% (${humanSize(Number(m[2]))})`) },
    })
  } finally {
    clearInterval(tick)
    p.stop()
  }
  if (r.exitCode !== 0) {
    // qmrestore/pct restore print vma's error on stdout; stderr has only the last line.
    const vmaErr = r.stdout.split('\n').filter((l) => /error|wrong|unable|timeout|can't|failed|missing/i.test(l)).at(-1)?.trim()
    const why = [vmaErr, lastLine(r.stderr)].filter((x, i, a) => x && x !== 'no output' && a.indexOf(x) === i).join(' / ')
    throw new RestoreFailed(`The restore of ${kindWord(f.type)} ${f.targetId} failed: ${why || `exit ${r.exitCode}`}.`)
  }
  const pct = [...r.stdout.matchAll(/progress (\d+)%/g)].at(-1)?.[1]
  const out = r.stdout.split('\n')
  const at = out.findIndex((l) => l.trim() === 'Execute autostart')
  const startSaid = at < 0 ? undefined : out.slice(at + 1).map((l) => l.trim()).filter(Boolean)
  const started = at < 0 ? '' : startSaid?.length ? `, then its start warned: ${startSaid.at(-1)}` : ', then started'
  return { lines: [`${humanSize(f.backup.size)} archive${pct ? `, progress ${pct}%` : ''}${started}`], startSaid }
}

/** The node's restore command failed: past the archive header, an overwritten guest has lost its disks. */
class RestoreFailed extends DrError {
  constructor(message: string) {
    super('failed', message)
  }
}

/**
 * The rollback after a failed restore over an existing guest: its safety backup restored, started
 * when it was running before, and proven. Always throws (exit 1): the failure and the rollback, both.
 */
async function rollBack(pve: Pve, req: GuestRestoreRequest, f: RestoreFacts, safety: string, cause: DrError, report: Report, run: RunState): Promise<never> {
  const o = f.occupant!
  const kind = kindWord(f.type)
  const t = f.targetId
  const what = label(o.type, t, o.config)
  const file = safety.slice(safety.indexOf('/') + 1)
  const argv = f.type === 'qemu' ? ['qmrestore', safety, String(t), '--force', '1'] : ['pct', 'restore', String(t), safety, '--force', '1', '--storage', f.storage ?? 'local']
  const wasRunning = o.status === 'running'
  say(`${mark.fail} ${cause.message} Rolling back to the safety backup (--no-rollback would leave it).`)
  let failures: string[]
  try {
    run.phase = `the restore of ${kind} ${t} failed and its rollback to ${safety} was running`
    await report.step(`Roll back ${what} to its safety backup`, async (d) => {
      const r = await pve.ssh.run(argv, { timeoutMs: 12 * 3600_000 })
      if (r.exitCode !== 0) throw new DrError('failed', `\`${commandLine(argv)}\` failed: ${lastLine(r.stderr || r.stdout)}`)
      d.push(file)
    })
    if (wasRunning) {
      await report.step(`Start ${kind} ${t}`, async () => {
        const r = await pve.ssh.run([tool(f.type), 'start', String(t)], { timeoutMs: 10 * 60_000 })
        if (r.exitCode !== 0) throw new DrError('failed', `${kind} ${t} did not start: ${lastLine(r.stderr || r.stdout)}`)
      })
    }
    const noStartReason = wasRunning ? undefined : 'it was stopped before the restore'
    failures = await proveRestored(pve, { ...f, backupConf: o.config, noStartReason, checks: verificationChecks(f.type, o.config, f.access, noStartReason) }, run, report)
  } catch (e) {
    if (!(e instanceof DrError)) throw e
    throw new DrError('failed', `${cause.message} The rollback to the safety backup failed too: ${e.message} ${what} is broken.`, `Its safety backup is ${safety}: ${run.undo.slice(1).join(' ')}`)
  }
  report.facts.rolledBack = safety
  if (failures.length) throw new DrError('failed', `${cause.message} Rolled back to the safety backup ${file}, but ${what} fails its checks: ${failures.join(' ')}`)
  run.phase = `the restore of ${kind} ${t} failed; it was rolled back to ${safety}`
  run.undo = [`Safety backup kept: ${safety}`]
  throw new DrError('failed', `${cause.message} Rolled back: ${what} is as it was before, from its safety backup ${file}${wasRunning ? ', running and reachable' : ', stopped as it was'}.`, `Nothing else changed. Check the backup ${f.backup.file} (npm run verify:backups -- --vmid ${f.backup.vmid}) before trying again.`)
}

/** How to put back what the restore replaced. */
function undoLines(req: GuestRestoreRequest, f: RestoreFacts, safety: string): string[] {
  // stopped first: the restored guest usually runs, and a running one refuses the overwrite ("vm is
  // running"). qm stop of a stopped VM succeeds; pct stop of a stopped CT fails, hence its `;`.
  const cmd = f.type === 'qemu'
    ? `qm stop ${f.targetId} && qmrestore ${safety} ${f.targetId} --force 1`
    : `pct stop ${f.targetId}; pct restore ${f.targetId} ${safety} --force 1 --storage ${f.storage ?? 'local'}`
  return [
    `Safety backup of the guest as it was: ${safety}`,
    `To put it back: npm run restore:vm -- ${f.targetId} --backup ${safety}${req.tfDir ? ` --tf-dir ${req.tfDir}` : ''}`,
    `  (on the node: ${cmd})`,
  ]
}

// ---- prove ----

/** US1.1: status, then ping and SSH while it boots, the agent last. Returns the failed checks' sentences. */
async function proveRestored(pve: Pve, f: RestoreFacts, run: RunState, report: Report): Promise<string[]> {
  const kind = kindWord(f.type)
  const t = f.targetId
  const name = guestName(f.backupConf) ?? `${kind.toLowerCase()}${t}`
  const bootMs = envSeconds('HDR_BOOT_TIMEOUT', 120, 1, 3600) * 1000
  const failures: string[] = []
  /** A check after the restore: `✓ title: detail`, or `✗ title: reason` and counted as a failure. */
  const noteFail = async (title: string, fn: (d: string[]) => Promise<void>) => {
    try {
      await report.check(title, fn, { showFailure: true })
    } catch (e) {
      if (!(e instanceof DrError)) throw e
      failures.push(e.message)
    }
  }
  report.facts.safetyBackup = run.undo[0]?.replace(/^.*: /, '')

  if (f.noStartReason) {
    const r = await verifyOnNode(pve, f.type, t, false)
    await noteFail(`${kind} ${t} restored, left stopped`, async (d) => {
      if (r.status !== 'stopped') throw new DrError('verification', `${kind} ${t} should be stopped but is ${r.status}.`)
      d.push(f.noStartReason!)
    })
    report.facts.checks = ['status stopped']
  } else {
    const agent = f.type === 'qemu' && agentEnabled(f.backupConf)
    const asked = Date.now()
    const r = await verifyOnNode(pve, f.type, t, agent)
    await noteFail(`${kind} ${t} status running`, async (d) => {
      if (r.status !== 'running') {
        const said = run.startSaid?.length ? ` The start after the restore said: ${run.startSaid.at(-1)}` : ''
        throw new DrError('verification', `${kind} ${t} is ${r.status}, not running.${said}`)
      }
      if (r.statusFrom === 'agent') d.push(r.agent === 'ok' ? 'its guest agent answers' : 'its guest agent is starting')
    })
    const address = f.access.address
    if (address && r.status === 'running') {
      await noteFail(`${address} answers ping`, async (d) => {
        const n = await waitForPing(address, bootMs)
        if (n > 1) d.push(`after ${n} attempts`)
      })
      await noteFail(`SSH login to ${f.access.user}@${address}`, async (d) => {
        const host = await waitForSsh({ ...f.access, address }, name, bootMs)
        d.push(`hostname ${host}`)
        if (host !== name) d.push(`(the backup calls it ${name})`)
      })
    } else if (!address) {
      report.record('Ping and SSH', 'warning', ['no address known for the guest: add it to guest_addresses in terraform.tfvars'])
    }
    if (agent && r.status === 'running') {
      await noteFail('Guest agent answers', async () => {
        const a = r.agent === 'ok' ? 'ok' : await waitForAgent(pve, t, bootMs, asked)
        if (a !== 'ok') throw new DrError('verification', `The QEMU guest agent of VM ${t} does not answer: ${a}.`)
      })
    }
    report.facts.checks = f.checks
  }
  report.facts.sshCommands = pve.ssh.commands
  return failures
}
