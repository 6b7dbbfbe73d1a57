// vzdump backups: the file-name grammar (pve-storage archive_info), validated listings, and picking
// the backup an operator asked for (latest, a day, a minute, or a volid).
import { DrError } from './errors.ts'

export type GuestType = 'qemu' | 'lxc'

export interface Backup {
  volid: string
  storage: string
  /** File name, e.g. vzdump-qemu-101-2026_02_01-03_00_02.vma.zst */
  file: string
  vmid: number
  type: GuestType
  /** 'vma.zst', 'tar.gz', 'tgz', … */
  format: string
  /** gz | lzo | zst | bz2 | undefined (uncompressed) */
  compression: string | undefined
  size: number
  /** Seconds since the epoch (the node's ctime; from the name when standard). */
  ctime: number
  notes: string | undefined
  protected: boolean
  /** The node's local wall-clock time (YYYY-MM-DDTHH:MM:SS): from the name, else ctime in the NODE's timezone. */
  localTime?: string
  /** true when pve-storage calls the name non-standard (renamed or copied dumps): listed, flagged. */
  nonStandardName?: boolean
}

// pve-storage src/PVE/Storage.pm archive_info, with VMID 100–999999999.
export const VZDUMP_NAME = /^vzdump-(qemu|lxc|openvz)-([1-9][0-9]{2,8})-(\d{4})_(\d{2})_(\d{2})-(\d{2})_(\d{2})_(\d{2})\.(tgz|(?:tar|vma)(?:\.(gz|lzo|zst|bz2))?)$/

export interface ParsedName {
  type: 'qemu' | 'lxc' | 'openvz'
  vmid: number
  /** The node's local wall-clock time in the name: YYYY-MM-DDTHH:MM:SS */
  localTime: string
  format: string
  compression: string | undefined
  /** The vzdump log beside it: the name without the archive extension + .log */
  logName: string
}

export function parseBackupName(file: string): ParsedName | undefined {
  const m = VZDUMP_NAME.exec(file)
  if (!m) return undefined
  const [, type, vmid, y, mo, d, h, mi, s, format, comp] = m
  return {
    type: type as ParsedName['type'],
    vmid: Number(vmid),
    localTime: `${y}-${mo}-${d}T${h}:${mi}:${s}`,
    format: format!,
    compression: format === 'tgz' ? 'gz' : comp,
    logName: file.slice(0, file.length - format!.length - 1) + '.log',
  }
}

// pve-storage src/PVE/Storage.pm archive_info: any `vzdump-<type>-….<ext>` is a backup of that type;
// only the full grammar above is a "standard name" (is_std_name) with a VMID and a time in it.
const ARCHIVE_ANY = /^vzdump-(lxc|openvz|qemu)-.+\.(tgz$|tar|vma)(?:\.(gz|lzo|zst|bz2))?$/

export interface ArchiveInfo {
  type: 'qemu' | 'lxc' | 'openvz'
  /** The whole extension, as the content API's `format`: 'vma.zst', 'tgz', 'tar'. */
  format: string
  /** From the extension: tgz is gz. */
  compression: string | undefined
  /** Standard names only (is_std_name). */
  standard: boolean
  vmid: number | undefined
  localTime: string | undefined
}

/** archive_info, as Proxmox reads a backup's file name; undefined for what it cannot read. */
export function archiveInfo(file: string): ArchiveInfo | undefined {
  const m = ARCHIVE_ANY.exec(file)
  if (!m) return undefined
  const [, type, base, comp] = m
  const std = parseBackupName(file)
  return {
    type: type as ArchiveInfo['type'],
    format: comp ? `${base}.${comp}` : base!,
    compression: base === 'tgz' ? 'gz' : comp,
    standard: std !== undefined,
    vmid: std?.vmid ?? listingVmid(file),
    localTime: std?.localTime,
  }
}

/**
 * The VMID the content listing gives a file (pve-storage src/PVE/Storage/Plugin.pm $get_subdir_files:
 * the first `-<100..999999999>-` before the extension), e.g. 16110 for vzdump-qemu-16110-anything.tgz.
 */
export function listingVmid(file: string): number | undefined {
  const ext = /\.(tgz|(?:tar|vma)(?:\.(?:gz|lzo|zst|bz2))?)$/.exec(file)
  if (!ext) return undefined
  const m = new RegExp(`-([1-9][0-9]{2,8})-[^/]+\\.${ext[1]!.replace(/\./g, '\\.')}$`).exec(file)
  return m ? Number(m[1]) : undefined
}

/** A VMID as typed by the operator: 100–999999999 (pve-cluster's vmid range). */
export function parseVmid(text: string | undefined, what = 'VMID'): number {
  if (text === undefined || !/^[1-9][0-9]{2,8}$/.test(text)) {
    throw new DrError('usage', `Invalid ${what} ${JSON.stringify(text ?? '')}: expected a number from 100 to 999999999.`)
  }
  return Number(text)
}

export type DateWanted = { kind: 'day'; day: string } | { kind: 'minute'; minute: string }

/** --date YYYY-MM-DD or YYYY-MM-DDTHH:MM (node local time), checked as a real calendar date. */
export function parseDateWanted(text: string): DateWanted {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2}))?$/.exec(text)
  const bad = () => new DrError('usage', `Invalid --date ${JSON.stringify(text)}: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM (the node's local time).`)
  if (!m) throw bad()
  const [, y, mo, d, h, mi] = m.map(Number) as [number, number, number, number, number?, number?]
  const probe = new Date(Date.UTC(y, mo - 1, d))
  if (probe.getUTCFullYear() !== y || probe.getUTCMonth() !== mo - 1 || probe.getUTCDate() !== d) throw bad()
  if (h !== undefined && !Number.isNaN(h) && (h > 23 || (mi ?? 0) > 59)) throw bad()
  const day = text.slice(0, 10)
  return m[4] ? { kind: 'minute', minute: `${day}T${m[4]}:${m[5]}` } : { kind: 'day', day }
}

/** Local wall-clock time of a backup on the node (from its name when standard, else ctime in `tz`). */
export function backupLocalTime(b: Backup, tz?: string): string {
  if (b.localTime) return b.localTime
  const parsed = parseBackupName(b.file)
  if (parsed) return parsed.localTime
  return localIso(b.ctime, tz)
}

export function localIso(epochSeconds: number, tz?: string): string {
  const parts = new Intl.DateTimeFormat('en-CA', {
    timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
  }).formatToParts(new Date(epochSeconds * 1000))
  const get = (t: string) => parts.find((p) => p.type === t)?.value ?? '00'
  return `${get('year')}-${get('month')}-${get('day')}T${get('hour')}:${get('minute')}:${get('second')}`
}

/** Newest first. */
export function sortBackups(list: Backup[]): Backup[] {
  return [...list].sort((a, b) => b.ctime - a.ctime || b.file.localeCompare(a.file))
}

/** US1.2 / US1.3: the latest backup, or the latest of the wanted day or minute. */
export function pickBackup(list: Backup[], wanted: DateWanted | undefined, tz?: string): Backup {
  const sorted = sortBackups(list)
  if (!wanted) return sorted[0]!
  const match = sorted.find((b) => {
    const t = backupLocalTime(b, tz)
    return wanted.kind === 'day' ? t.startsWith(wanted.day) : t.startsWith(wanted.minute)
  })
  if (match) return match
  const target = wanted.kind === 'day' ? `${wanted.day}T12:00:00` : `${wanted.minute}:00`
  const nearest = [...sorted]
    .sort((a, b) => Math.abs(Date.parse(backupLocalTime(a, tz)) - Date.parse(target)) - Math.abs(Date.parse(backupLocalTime(b, tz)) - Date.parse(target)))
    .slice(0, 3)
    .map((b) => backupLocalTime(b, tz).replace('T', ' '))
  const asked = wanted.kind === 'day' ? wanted.day : wanted.minute.replace('T', ' ')
  throw new DrError('prerequisites', `No backup of ${sorted[0]!.type === 'lxc' ? 'CT' : 'VM'} ${sorted[0]!.vmid} from ${asked}. Nearest backups: ${nearest.join(', ')}.`, 'Pass one of those with --date, or use --list to see them all.')
}

export function humanSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = bytes
  let i = 0
  while (v >= 1024 && i < units.length - 1) [v, i] = [v / 1024, i + 1]
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`
}
