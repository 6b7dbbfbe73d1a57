// verify:backups' results for Prometheus' node-exporter textfile collector: per guest the time of
// the newest good backup, its size, the number of files that passed or failed, and whether it is
// missing or stale; per environment the state versions that passed or failed. Written atomically
// (a random temporary file in the same folder, created exclusively, then rename), so the collector
// never reads half a file and nothing planted in the folder can redirect the write.
import { closeSync, constants, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs'
import { DrError } from './errors.ts'
import { basename, dirname, join } from 'node:path'
import type { FileItem, GuestItem, Item, StateItem } from './verify.ts'

const P = 'homelab_dr'

/** `name{labels} value` lines with HELP/TYPE headers, one family at a time. */
export class Exposition {
  private readonly lines: string[] = []
  family(name: string, help: string, samples: Array<[Record<string, string>, number]>): void {
    this.lines.push(`# HELP ${P}_${name} ${help}`, `# TYPE ${P}_${name} gauge`)
    for (const [labels, value] of samples) this.lines.push(`${P}_${name}${labelText(labels)} ${formatValue(value)}`)
  }
  text(): string {
    return this.lines.join('\n') + '\n'
  }
}

const escapeLabel = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')
const labelText = (l: Record<string, string>) => {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${escapeLabel(v)}"`)
  return parts.length ? `{${parts.join(',')}}` : ''
}
const formatValue = (v: number) => (Number.isFinite(v) ? String(v) : v > 0 ? '+Inf' : v < 0 ? '-Inf' : 'NaN')

export function renderMetrics(items: Item[], run: { finishedAt: number; durationSeconds: number; exitCode: number }): string {
  const files = items.filter((i): i is FileItem => i.kind === 'file')
  const guests = items.filter((i): i is GuestItem => i.kind === 'guest')
  const states = items.filter((i): i is StateItem => i.kind === 'state')
  const vmids = [...new Set([...files.map((f) => f.vmid), ...guests.map((g) => g.vmid)])].sort((a, b) => a - b)
  const guestOf = (vmid: number) => guests.find((g) => g.vmid === vmid)
  const typeOf = (vmid: number) => files.find((f) => f.vmid === vmid)?.type ?? guestOf(vmid)?.type ?? 'unknown'
  const lab = (vmid: number) => ({ vmid: String(vmid), type: typeOf(vmid) })
  const newestGood = (vmid: number) => files.filter((f) => f.vmid === vmid && f.status !== 'failed').sort((a, b) => b.ctime - a.ctime)[0]
  const m = new Exposition()

  m.family('backup_last_good_timestamp_seconds', 'Creation time of the newest backup of the guest that passed verification (0: none).',
    vmids.map((v) => [lab(v), newestGood(v)?.ctime ?? guestOf(v)?.lastGood?.ctime ?? 0]))
  m.family('backup_last_good_size_bytes', 'Size of the newest good backup of the guest.',
    vmids.map((v) => [lab(v), newestGood(v)?.size ?? guestOf(v)?.lastGood?.size ?? 0]))
  m.family('backup_files', 'Backup files of the guest by verification result.',
    vmids.flatMap((v) => (['ok', 'warning', 'failed'] as const).map((s): [Record<string, string>, number] => [{ ...lab(v), result: s }, files.filter((f) => f.vmid === v && f.status === s).length])))
  m.family('backup_missing_or_stale', '1 when the guest has no good backup younger than its maximum age.',
    guests.map((g) => [lab(g.vmid), g.status === 'ok' ? 0 : 1]))
  m.family('backup_max_age_seconds', 'The maximum age allowed for the guest\'s newest good backup.',
    guests.map((g) => [lab(g.vmid), g.maxAgeHours * 3600]))
  const envs = [...new Set(states.map((s) => s.env))].sort()
  m.family('state_versions', 'Terraform state versions by verification result.',
    envs.flatMap((e) => (['ok', 'failed'] as const).map((s): [Record<string, string>, number] => [{ env: e, result: s }, states.filter((x) => x.env === e && x.status === s).length])))
  m.family('state_latest_ok', '1 when the current version of the environment\'s state passed verification.',
    envs.map((e) => [{ env: e }, states.find((x) => x.env === e && x.isLatest)?.status === 'ok' ? 1 : 0]))
  m.family('verify_last_run_timestamp_seconds', 'When verify:backups last finished.', [[{}, Math.floor(run.finishedAt / 1000)]])
  m.family('verify_duration_seconds', 'How long verify:backups took.', [[{}, Math.round(run.durationSeconds * 10) / 10]])
  m.family('verify_exit_code', 'verify:backups exit code (0: all good, 1: something failed, 5: warnings only).', [[{}, run.exitCode]])
  return m.text()
}

/** dr:check's results: one sample per check (1 ok, 0 failed), failed checks per area, the run. */
export function renderCheckMetrics(lines: Array<{ area: string; name: string; ok: boolean }>, run: { finishedAt: number; durationSeconds: number; exitCode: number }): string {
  const m = new Exposition()
  m.family('check_ok', 'dr:check: 1 when the check passed, 0 when it failed.', lines.map((l) => [{ area: l.area, check: l.name }, l.ok ? 1 : 0]))
  const areas = [...new Set(lines.map((l) => l.area))]
  m.family('check_failed', 'dr:check: failed checks per area.', areas.map((a) => [{ area: a }, lines.filter((l) => l.area === a && !l.ok).length]))
  m.family('check_last_run_timestamp_seconds', 'When dr:check last finished.', [[{}, Math.floor(run.finishedAt / 1000)]])
  m.family('check_duration_seconds', 'How long dr:check took.', [[{}, Math.round(run.durationSeconds * 10) / 10]])
  m.family('check_exit_code', 'dr:check exit code (0: the lab is healthy).', [[{}, run.exitCode]])
  return m.text()
}

/**
 * Write `text` to `file` atomically: a temporary file in the same folder with a random name, created
 * exclusively and without following a symlink (O_EXCL | O_NOFOLLOW: nothing planted there can redirect
 * the write), then renamed over the target (a symlink at the target is replaced, never followed).
 * Mode 0644: the node-exporter reads it. A failure is a DrError naming the file.
 */
export function writeAtomic(file: string, text: string): void {
  const tmp = join(dirname(file), `.${basename(file)}.${Buffer.from(crypto.getRandomValues(new Uint8Array(8))).toString('hex')}.tmp`)
  let fd: number | undefined
  try {
    mkdirSync(dirname(file), { recursive: true })
    fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644)
    writeSync(fd, text)
    fsyncSync(fd)
    closeSync(fd)
    fd = undefined
    renameSync(tmp, file)
  } catch (e) {
    if (fd !== undefined) closeSync(fd)
    try {
      rmSync(tmp, { force: true })
    } catch {
      // the folder itself is the problem: there is no temporary file to remove
    }
    throw new DrError('failed', `Cannot write the metrics file ${file}: ${(e as Error).message}`)
  }
}
