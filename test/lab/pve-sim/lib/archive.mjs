// Backup archives on a dir storage: names (pve-storage src/PVE/Storage.pm archive_info,
// BACKUP_EXT_RE_2), decompressors (Storage.pm decompressor_info), listing
// (pve-storage src/PVE/Storage/Plugin.pm $get_subdir_files backup branch).
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { dumpDir } from './state.mjs'

export const ARCHIVE_RE = /^vzdump-(qemu|lxc|openvz)-([1-9][0-9]{2,8})-(\d{4})_(\d{2})_(\d{2})-(\d{2})_(\d{2})_(\d{2})\.(tgz|(?:tar|vma)(?:\.(gz|lzo|zst|bz2))?)$/
const ANY_RE = /^vzdump-(lxc|openvz|qemu)-.+\.(tgz|(?:tar|vma)(?:\.(gz|lzo|zst|bz2))?)$/

/** archive_info: type, vmid, ctime (local time from the name), format, compression. */
export function archiveInfo(file) {
  const fn = path.basename(file)
  const a = ANY_RE.exec(fn)
  if (!a) return null
  const info = { filename: fn, type: a[1], format: a[2], comp: a[3] ?? (a[2] === 'tgz' ? 'gz' : null), kind: a[2].startsWith('vma') ? 'vma' : 'tar' }
  const m = ARCHIVE_RE.exec(fn)
  if (m) {
    info.vmid = Number(m[2])
    info.ctime = Math.floor(new Date(Number(m[3]), Number(m[4]) - 1, Number(m[5]), Number(m[6]), Number(m[7]), Number(m[8])).getTime() / 1000)
    info.logfilename = fn.slice(0, fn.length - a[2].length - 1) + '.log'
  }
  return info
}

/** decompressor_info: the command that turns the archive into a vma / tar stream. */
export function decompressor(comp) {
  return ({ gz: ['zcat'], lzo: ['lzop', '-d', '-c'], zst: ['zstd', '-q', '-d', '-c'], bz2: ['bzcat', '-q'] })[comp] ?? null
}
/** vzdump compressor_info: compress option → [command, extension]. (pve-manager PVE/VZDump.pm) */
export function compressor(compress) {
  if (!compress || compress === '0') return null
  if (compress === '1' || compress === 'lzo') return { cmd: ['lzop'], ext: 'lzo' }
  if (compress === 'gzip') return { cmd: ['gzip', '--rsyncable'], ext: 'gz' }
  if (compress === 'zstd') return { cmd: ['zstd', '--threads=1', '-q'], ext: 'zst' }
  return null
}

/** Run a filter command over a buffer; returns stdout, stderr and status (partial output kept). */
export function filter(cmd, input, file) {
  const [bin, ...args] = cmd
  const r = spawnSync(bin, file ? [...args, file] : args, { input: file ? undefined : input, maxBuffer: 1 << 30 })
  return { data: r.stdout ?? Buffer.alloc(0), stderr: (r.stderr ?? Buffer.alloc(0)).toString('utf8'), status: r.status ?? 1 }
}

/** Decompress an archive file fully (or pass it through); keeps what came out before an error. */
export function readArchive(file, comp) {
  const cmd = decompressor(comp)
  if (!cmd) return { data: fs.readFileSync(file), stderr: '', status: 0 }
  return filter(cmd, null, file)
}

/** The storage's backups, as the content API lists them (order deliberately unstable). */
export function listBackups(sid, st, vmid) {
  const dir = dumpDir(st)
  let names = []
  try { names = fs.readdirSync(dir) } catch {}
  const list = []
  for (const fn of names) {
    // Plugin.pm: any name with a backup extension is listed; archive_info gives type and (standard
    // names) ctime; the VMID is --vmid when given (`next if $fn !~ m/\S+-$vmid-\S+/`), else the first
    // `-<vmid>-` before the extension. A non-standard name's ctime is the file's.
    const ext = /\.(tgz|(?:tar|vma)(?:\.(?:gz|lzo|zst|bz2))?)$/.exec(fn)
    if (!ext) continue
    const info = archiveInfo(fn) ?? { format: ext[1], type: undefined, ctime: undefined }
    if (vmid !== undefined && !new RegExp(`\\S+-${vmid}-\\S+`).test(fn)) continue
    const full = path.join(dir, fn)
    const stat = fs.statSync(full)
    if (!stat.isFile()) continue
    const e = { volid: `${sid}:backup/${fn}`, format: ext[1], size: stat.size, ctime: info.ctime ?? Math.floor(stat.ctimeMs / 1000), content: 'backup', subtype: info.type ?? 'unknown' }
    const found = vmid ?? (new RegExp(`-([1-9][0-9]{2,8})-[^/]+\\.${ext[1].replace(/\./g, '\\.')}$`).exec(fn)?.[1])
    if (found !== undefined) e.vmid = Number(found)
    try { const notes = fs.readFileSync(full + '.notes', 'utf8'); e.notes = notes.split('\n')[0] } catch {}
    if (fs.existsSync(full + '.protected')) e.protected = 1
    list.push(e)
  }
  // pvesh prints the storage plugin's readdir order, which is not sorted: do not promise one
  for (let i = list.length - 1; i > 0; i--) { const j = Math.floor(Math.random() * (i + 1)); [list[i], list[j]] = [list[j], list[i]] }
  return list
}
