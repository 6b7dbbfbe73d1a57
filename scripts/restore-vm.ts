#!/usr/bin/env node
// restore:vm — restore a VM or LXC container from a vzdump backup, start it and prove it (US1).
//
//   npm run restore:vm -- 101                      latest backup, in place (asks first)
//   npm run restore:vm -- 101 --list               the backups of 101, newest first
//   npm run restore:vm -- 101 --date 2026-02-01    the latest backup of that day (node time)
//   npm run restore:vm -- 101 --target-id 150      a copy under 150; 101 is not touched
//   npm run restore:vm -- 110 --dry-run            the plan, with real facts; nothing changes
//
// Order: args → config → preflight (EF-001) → plan (EF-002; --dry-run stops, EF-007) → confirm
// (US1.5, EC-3) → safety backup (EF-006) → stop → restore → start → verify (US1.1) → report (EF-003).
// The guest itself is brought back by the shared flow, lib/guest-restore.ts; this file keeps
// restore:vm's own story: its arguments, --list, the EC-3 choice and its words. Manual: docs/restore-vm.md.
import { defineTask, onInterrupt } from '../lib/task.ts'
import { DrError } from '../lib/errors.ts'
import type { CommandSpec, Values } from '../lib/args.ts'
import { loadConfig, findNode, type Config } from '../lib/config.ts'
import { Ssh } from '../lib/ssh.ts'
import { Pve, kindWord, tool } from '../lib/pve.ts'
import { parseVmid, parseDateWanted, parseBackupName, sortBackups, backupLocalTime, humanSize, type DateWanted } from '../lib/backups.ts'
import { label } from '../lib/guest.ts'
import { restoreGuest, confirmRestore, retarget, type GuestRestoreRequest, type GuestRestoreResult, type RestoreFacts, type RunState } from '../lib/guest-restore.ts'
import { Report } from '../lib/report.ts'
import { choose, declined } from '../lib/prompt.ts'
import { say, printJson, isJsonMode, mark } from '../lib/output.ts'

const options = {
  date: { type: 'string', value: 'YYYY-MM-DD[THH:MM]', description: 'the latest backup of that day or minute (node time)' },
  backup: { type: 'string', value: 'VOLID', description: 'this exact backup, e.g. local:backup/vzdump-qemu-101-…vma.zst' },
  list: { type: 'boolean', description: 'list the backups of <vmid> and exit' },
  'target-id': { type: 'string', value: 'N', description: 'restore as a copy under VMID N (new MACs); <vmid> is not touched' },
  storage: { type: 'string', value: 'S', description: 'put the restored disks on storage S (default: where they were)' },
  node: { type: 'string', value: 'NAME', description: 'the Proxmox node (default: the first in proxmox_nodes)' },
  'no-start': { type: 'boolean', description: 'leave the restored guest stopped (no ping/SSH check)' },
} as const

const spec: CommandSpec<typeof options> = {
  id: 'restore:vm',
  summary: 'Restore a VM or LXC container from vzdump, start it and prove it with ping + SSH.',
  description: `
Restores <vmid> (a VM or a container: detected from the backup) from its latest vzdump backup, or the
one named by --date or --backup. Checks first (node reachable, backup storage active, the archive
read end to end, free space, no lock or protection), shows the plan and asks before changing anything.
Before overwriting an existing guest it takes a safety backup with vzdump; after the restore it starts
the guest and proves it: status running, guest agent (when configured), ping and SSH to its address.
Guest address: the backup's ipconfig0/net0, else guest_addresses in terraform.tfvars (docs/restore-vm.md).`,
  positionals: [{ name: 'vmid', description: 'the VM or container to restore (100–999999999)', required: true }],
  options,
  examples: [
    'npm run restore:vm -- 101',
    'npm run restore:vm -- 101 --list',
    'npm run restore:vm -- 101 --date 2026-02-01 --dry-run',
    'npm run restore:vm -- 110 --target-id 150 --no-start',
  ],
}

// ---- args: every usage error before any I/O ----

interface Request {
  vmid: number
  date: DateWanted | undefined
  backup: string | undefined
  list: boolean
  targetId: number | undefined
  storage: string | undefined
  node: string | undefined
  start: boolean
  dryRun: boolean
  yes: boolean
  force: boolean
  tfDir: string | undefined
}

function readRequest(positionals: string[], v: Values<typeof options>): Request {
  const vmid = parseVmid(positionals[0])
  if (v.date !== undefined && v.backup !== undefined) throw new DrError('usage', 'Use either --date or --backup, not both.')
  const date = v.date === undefined ? undefined : parseDateWanted(v.date)
  if (v.backup !== undefined) {
    const m = /^[a-z][a-z0-9_.-]*:backup\/([^/]+)$/i.exec(v.backup)
    const parsed = m ? parseBackupName(m[1]!) : undefined
    if (!parsed || parsed.type === 'openvz') throw new DrError('usage', `Invalid --backup ${JSON.stringify(v.backup)}: expected a vzdump volid such as local:backup/vzdump-qemu-${vmid}-2026_02_01-03_00_02.vma.zst.`, `List them with: npm run restore:vm -- ${vmid} --list`)
    if (parsed.vmid !== vmid) throw new DrError('usage', `--backup ${v.backup} is a backup of ${parsed.vmid}, not of ${vmid}.`, `To restore it as ${vmid}, run: npm run restore:vm -- ${parsed.vmid} --backup ${v.backup} --target-id ${vmid}`)
  }
  const targetId = v['target-id'] === undefined ? undefined : parseVmid(v['target-id'], '--target-id')
  if (targetId === vmid) throw new DrError('usage', `--target-id ${targetId} is the guest being restored: leave --target-id out to restore in place, or give another ID.`)
  if (v.storage !== undefined && !/^[a-z][a-z0-9_.-]*$/i.test(v.storage)) throw new DrError('usage', `Invalid --storage ${JSON.stringify(v.storage)}: expected a Proxmox storage ID such as local-lvm.`)
  return {
    vmid, date, backup: v.backup, list: v.list, targetId, storage: v.storage, node: v.node,
    start: !v['no-start'], dryRun: v['dry-run'], yes: v.yes, force: v.force, tfDir: v['tf-dir'],
  }
}

// ---- the runbook ----

async function main(req: Request): Promise<number> {
  const cfg = await loadConfig(req.tfDir)
  const node = findNode(cfg, req.node)
  const report = new Report('restore:vm')
  const ssh = new Ssh(node)
  const run: RunState = { phase: 'nothing changed', undo: [] }
  onInterrupt(() => run.phase === 'nothing changed' ? 'Nothing had been changed yet.' : `${run.phase}. ${run.undo.join(' ')}`)
  try {
    // Preflight (EF-001): each check one line; the first that fails stops everything, nothing changed.
    const pve = await report.check(`Node '${node.name}' reachable over SSH (${node.user}@${node.host}:${node.port})`, () => Pve.connect(ssh))
    if (req.list) return await listBackups(pve, cfg, req)

    // Preflight, plan (EF-002), confirm (US1.5, EC-3), safety backup (EF-006), stop, restore, start,
    // verify (US1.1): the shared flow (lib/guest-restore.ts); --dry-run stops after the plan (EF-007).
    const r = await restoreGuest(pve, cfg, { ...req, task: 'restore:vm' }, report, run, { confirm: confirmPlan })

    // Report (EF-003).
    return finish(r, report)
  } catch (e) {
    if (!(e instanceof DrError)) throw e
    return report.fail(e, run.undo)
  } finally {
    report.facts.sshCommands = ssh.commands
    await ssh.close()
  }
}

// ---- --list ----

async function listBackups(pve: Pve, cfg: Config, req: Request): Promise<number> {
  const storage = req.backup?.split(':')[0] ?? cfg.backupStorage
  const list = sortBackups(await pve.backups(storage, req.vmid))
  if (isJsonMode()) {
    printJson(list.map((b) => ({ ...b, time: backupLocalTime(b) })))
    return 0
  }
  if (list.length === 0) {
    say(`No backups of ${req.vmid} on storage '${storage}' (node '${pve.node}').`)
    return 0
  }
  say(`Backups of ${kindWord(list[0]!.type)} ${req.vmid} on storage '${storage}' (node '${pve.node}'), newest first:`)
  const rows = list.map((b) => [backupLocalTime(b).replace('T', ' '), humanSize(b.size), b.compression ?? 'none', b.protected ? 'protected' : '', b.notes ?? '', b.volid])
  const head = ['DATE (node time)', 'SIZE', 'COMP', 'PROTECTED', 'NOTES', 'VOLID']
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  for (const r of [head, ...rows]) say('  ' + r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd())
  return 0
}

// ---- confirm ----

/** EC-3: a running target offers stop-then-restore or the next free ID; otherwise the usual question. */
async function confirmPlan(pve: Pve, req: GuestRestoreRequest, f: RestoreFacts): Promise<RestoreFacts | undefined> {
  const o = f.occupant
  if (!o || o.status !== 'running' || req.yes || req.force) return confirmRestore(pve, req, f)
  const next = await pve.nextId()
  const what = label(o.type, o.vmid, o.config)
  const answer = await choose(`${what} is running. What now?`, [
    { key: 'a', label: 'abort: change nothing' },
    { key: 's', label: `take a safety backup of ${o.vmid}, stop it, and restore over it` },
    { key: 'n', label: `restore to the next free ID, ${next}, and leave ${o.vmid} running` },
  ])
  if (answer === 's') return undefined
  if (answer !== 'n') declined(`overwriting the running ${what}`)
  say(`Restoring to ${kindWord(f.type)} ${next} instead; ${what} stays as it is.`)
  return retarget(req, f, next)
}

// ---- report ----

function finish(r: GuestRestoreResult, report: Report): number {
  const f = r.facts
  if (r.status === 'dry-run') return report.finish({ exitCode: 0, summary: `Dry run: nothing was changed. Run the same command without --dry-run to restore.` })
  if (r.status === 'unverified') {
    return report.finish({
      exitCode: 5,
      summary: `${mark.fail} ${r.what} was restored from ${f.backup.file}, but its verification failed: ${r.failures.join(' ')}`,
      next: r.undo.length ? r.undo : [`The original is untouched. To remove the copy: ${tool(f.type)} destroy ${f.targetId} (on the node).`],
    })
  }
  return report.finish({
    exitCode: 0,
    summary: `${mark.ok} ${r.what} restored from ${f.backup.file}, ${r.proven}.`,
    next: [...(r.undo[0] ? [r.undo[0]] : []), ...(f.noStartReason ? [`Start it when ready: ${tool(f.type)} start ${f.targetId} (on the node).`] : [])],
  })
}

// Last, so that every declaration above is initialised when the task runs.
export const task = defineTask(spec, async ({ positionals, values }) => main(readRequest(positionals, values)), import.meta.url)
