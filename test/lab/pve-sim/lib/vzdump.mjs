// vzdump N --storage S --mode snapshot|stop --compress zstd [--notes-template T] [--remove 0|1] [--prune-backups keep-last=N,…]
// Naming and log lines: pve-manager PVE/VZDump.pm; log format: pve-guest-common src/PVE/VZDump/Plugin.pm
// debugmsg; VMA layout: pve-qemu vma-writer.c; LXC tar: pve-container src/PVE/VZDump/LXC.pm.
import fs from 'node:fs'
import path from 'node:path'
import os from 'node:os'
import { spawnSync } from 'node:child_process'
import {
  NODE, SimError, guestType, loadConf, printConf, confGet, getStorage, assertActive, dumpDir, getRun,
  volumePath, rootfsPath, now, guestName,
} from './state.mjs'
import { archiveInfo, compressor, filter } from './archive.mjs'
import { writeVma } from './vma.mjs'
import { out, err, work, parseArgs } from './cli.mjs'
import { configVolumes } from './restore.mjs'
import { guestDown, guestUp } from './guest.mjs'
import { setRun } from './state.mjs'

const pad = (n) => String(n).padStart(2, '0')
const stamp = (d) => `${d.getFullYear()}_${pad(d.getMonth() + 1)}_${pad(d.getDate())}-${pad(d.getHours())}_${pad(d.getMinutes())}_${pad(d.getSeconds())}`
const timestr = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
const human = (b) => (b >= 1048576 ? `${(b / 1048576).toFixed(1)} MiB` : `${(b / 1024).toFixed(1)} KiB`)

export async function vzdump(argv) {
  const usage = 'vzdump {<vmid>} [OPTIONS]'
  const { pos, opts } = parseArgs(argv, { storage: 'string', mode: 'string', compress: 'string', 'notes-template': 'string', remove: 'bool', all: 'bool', quiet: 'bool', protected: 'bool', dumpdir: 'string', bwlimit: 'int', zstd: 'int', 'prune-backups': 'string' }, usage)
  const cmdline = `vzdump ${argv.join(' ')}`
  const sid = opts.storage ?? 'local'
  const st = getStorage(sid)
  assertActive(sid, st)
  if (!st.content.split(',').includes('backup')) throw new SimError(`storage '${sid}' does not support backups`)
  const mode = opts.mode ?? 'snapshot'
  const comp = compressor(opts.compress ?? '0')
  const jobStart = new Date(now())
  out(`INFO: starting new backup job: ${cmdline}`)
  let errors = 0
  return work(async () => {
    for (const v of pos) {
      const vmid = Number(v)
      const type = guestType(vmid)
      const t0 = new Date(now())
      if (!type) { out(`ERROR: Backup of VM ${vmid} failed - unable to find VM '${vmid}'`); errors++; continue }
      const conf = loadConf(type, vmid)
      const base = `vzdump-${type}-${vmid}-${stamp(t0)}`
      const dir = dumpDir(st)
      fs.mkdirSync(dir, { recursive: true })
      const file = path.join(dir, `${base}.${type === 'qemu' ? 'vma' : 'tar'}${comp ? '.' + comp.ext : ''}`)
      const logFile = path.join(dir, `${base}.log`)
      const log = []
      const info = (m, lvl = 'INFO') => { log.push(`${timestr(new Date(now()))} ${lvl}: ${m}`); out(`${lvl}: ${m}`) }
      info(`Starting Backup of VM ${vmid} (${type})`)
      try {
        const lock = confGet(conf, 'lock')
        if (lock) throw new Error(`${type === 'qemu' ? 'VM' : 'CT'} is locked (${lock})`)
        const running = getRun(vmid).running
        info(`status = ${running ? 'running' : 'stopped'}`)
        info(`${type === 'qemu' ? 'VM Name' : 'CT Name'}: ${guestName(type, conf)}`)
        let data
        const vols = configVolumes(conf).filter((x) => !x.key.startsWith('unused'))
        if (type === 'qemu') {
          const devices = []
          const map = []
          for (const x of vols) {
            if (!x.backup) { info(`exclude disk '${x.key}' '${x.sid}:${x.name}' (backup=no)`); continue }
            const img = fs.readFileSync(volumePath(`${x.sid}:${x.name}`))
            info(`include disk '${x.key}' '${x.sid}:${x.name}' ${human(img.length).replace(' MiB', 'M')}`)
            devices.push({ name: `drive-${x.key}`, data: img })
            map.push({ comment: `#qmdump#map:${x.key}:drive-${x.key}:${x.sid}:raw:` })
          }
          info(`backup mode: ${mode}`)
          info('ionice priority: 7')
          if (mode === 'stop' && running) { info('stopping virtual guest'); guestDown(vmid, conf) }
          info(`creating vzdump archive '${file}'`)
          const cfgText = printConf([...map, ...conf.filter((e) => e.key !== 'lock')])
          data = writeVma({ configs: [{ name: 'qemu-server.conf', data: cfgText }], devices, ctime: Math.floor(t0.getTime() / 1000) })
          const total = devices.reduce((s, d) => s + d.data.length, 0)
          info(`started backup task '${data.subarray(8, 24).toString('hex').replace(/^(.{8})(.{4})(.{4})(.{4})/, '$1-$2-$3-$4-')}'`)
          if (mode === 'stop' && running) { info('resuming VM again'); guestUp(type, vmid, conf) }
          info(`100% (${human(total)} of ${human(total)}) in 0s, read: ${human(total)}/s, write: ${human(data.length)}/s`)
          info(`transferred ${human(total)} in <1 seconds`)
        } else {
          info(`backup mode: ${mode}`)
          info('ionice priority: 7')
          const root = vols.find((x) => x.key === 'rootfs')
          if (!root) throw new Error('missing rootfs')
          const rdir = rootfsPath(root.sid, root.name)
          if (mode === 'stop' && running) { info('stopping virtual guest'); guestDown(vmid, conf) }
          const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vzdumptmp'))
          fs.mkdirSync(path.join(tmp, 'etc/vzdump'), { recursive: true })
          fs.writeFileSync(path.join(tmp, 'etc/vzdump/pct.conf'), printConf(conf.filter((e) => e.key !== 'lock')))
          info(`creating vzdump archive '${file}'`)
          const t = spawnSync('tar', ['-cf', '-', '--numeric-owner', '-C', tmp, './etc/vzdump/pct.conf', '-C', rdir, '--exclude', './etc/vzdump', '.'], { maxBuffer: 1 << 30 })
          fs.rmSync(tmp, { recursive: true, force: true })
          if (t.status !== 0) throw new Error(`command 'tar cpf -' failed: exit code ${t.status}`)
          data = t.stdout
          info(`Total bytes written: ${data.length} (${human(data.length)}, 100 MiB/s)`)
          if (mode === 'stop' && running) { info('restarting vm'); guestUp(type, vmid, conf) }
        }
        if (comp) {
          const r = filter(comp.cmd, data)
          if (r.status !== 0) throw new Error(`${comp.cmd.join(' ')} failed - wrong exit status ${r.status}`)
          data = r.data
        }
        if (typeof st.avail === 'number' && st.avail < data.length) throw new Error(`vma_queue_write: write error - No space left on device`)
        fs.writeFileSync(file, data)
        info(`archive file size: ${human(data.length).replace(' MiB', 'MB').replace(' KiB', 'KB')}`)
        const tpl = opts['notes-template']
        if (tpl) {
          const notes = tpl.replace(/\{\{(\w+)\}\}/g, (m, k) => ({ guestname: guestName(type, conf), vmid: String(vmid), node: NODE, cluster: NODE })[k] ?? m).replace(/\\n/g, '\n')
          if (notes !== '') { info('adding notes to backup'); fs.writeFileSync(`${file}.notes`, notes) }
        }
        if (opts.protected) { info('marking backup as protected'); fs.writeFileSync(`${file}.protected`, '') }
        // pve-manager PVE/VZDump.pm new(): `$opts->{remove} = 1 if !defined($opts->{remove})`; then
        // exec_backup_task: "prune older backups with retention: …" by the storage's prune-backups.
        if (opts.remove !== false) {
          const keep = pruneOptions(opts['prune-backups'] ?? st['prune-backups'])
          info(`prune older backups with retention: ${Object.keys(keep).sort().map((k) => `${k}=${keep[k]}`).join(', ')}`)
          const removed = prune(sid, dir, type, vmid, keep, info)
          info(`pruned ${removed} backup(s)${removed > 0 ? ' not covered by keep-retention policy' : ''}`)
        }
        const secs = Math.floor((now() - t0.getTime()) / 1000)
        info(`Finished Backup of VM ${vmid} (${pad(Math.floor(secs / 3600))}:${pad(Math.floor(secs / 60) % 60)}:${pad(secs % 60)})`)
      } catch (e) {
        info(`Backup of VM ${vmid} failed - ${e.message}`, 'ERROR')
        fs.rmSync(file, { force: true })
        errors++
      }
      fs.writeFileSync(logFile, log.join('\n') + '\n')
    }
    out(`INFO: Backup job finished ${errors ? 'with errors' : 'successfully'}`)
    if (errors) throw new SimError('job errors', 255)
    return 0
  })
}

// ---- prune (pve-storage src/PVE/Storage.pm prune_mark_backup_group, src/PVE/Storage/Plugin.pm prune_backups) ----

/** `keep-last=2,keep-daily=7` → { 'keep-last': 2, … }; nothing configured → keep-all=1 (pve-manager's default). */
function pruneOptions(text) {
  const keep = {}
  for (const part of String(text ?? '').split(',').filter(Boolean)) {
    const m = /^(keep-(?:all|last|hourly|daily|monthly|yearly))=(\d+)$/.exec(part.trim())
    if (!m) throw new SimError(`400 Parameter verification failed.\nprune-backups: invalid format - unknown or unsupported option '${part}' (the simulator knows keep-all, -last, -hourly, -daily, -monthly, -yearly)`, 255)
    keep[m[1]] = Number(m[2])
  }
  return Object.keys(keep).length ? keep : { 'keep-all': 1 }
}

/** Marks this guest's backups keep/remove/protected like prune_mark_backup_group, removes the 'remove' ones. */
function prune(sid, dir, type, vmid, keep, info) {
  const group = []
  for (const fn of fs.readdirSync(dir)) {
    const a = archiveInfo(fn)
    if (!a || a.vmid !== vmid || a.type !== type || a.ctime === undefined) continue
    group.push({ fn, ctime: a.ctime, mark: fs.existsSync(path.join(dir, `${fn}.protected`)) ? 'protected' : undefined })
  }
  const positive = Object.keys(keep).filter((k) => k !== 'keep-all' && keep[k] > 0)
  if (keep['keep-all'] || positive.length === 0) return 0
  const list = [...group].sort((x, y) => y.ctime - x.ctime)
  const local = (t) => new Date(t * 1000)
  const ids = {
    'keep-last': (t) => String(t),
    'keep-hourly': (t) => { const d = local(t); return `${d.getHours()}/${d.getDate()}/${d.getMonth()}/${d.getFullYear()}` },
    'keep-daily': (t) => { const d = local(t); return `${d.getDate()}/${d.getMonth()}/${d.getFullYear()}` },
    'keep-monthly': (t) => { const d = local(t); return `${d.getMonth()}/${d.getFullYear()}` },
    'keep-yearly': (t) => String(local(t).getFullYear()),
  }
  for (const [opt, id] of Object.entries(ids)) {
    const count = keep[opt]
    if (!count) continue
    const already = new Set(list.filter((e) => e.mark === 'keep').map((e) => id(e.ctime)))
    const newly = new Set()
    for (const e of list) {
      if (e.mark !== undefined || already.has(id(e.ctime))) continue
      if (!newly.has(id(e.ctime))) {
        if (newly.size >= count) break
        newly.add(id(e.ctime))
        e.mark = 'keep'
      } else e.mark = 'remove'
    }
  }
  let removed = 0
  for (const e of list) {
    if ((e.mark ?? 'remove') !== 'remove') continue
    info(`removing backup '${sid}:backup/${e.fn}'`)
    // PVE::Storage::archive_remove: the archive, then its .log and .notes
    fs.rmSync(path.join(dir, e.fn), { force: true })
    const a = archiveInfo(e.fn)
    if (a?.logfilename) fs.rmSync(path.join(dir, a.logfilename), { force: true })
    fs.rmSync(path.join(dir, `${e.fn}.notes`), { force: true })
    removed++
  }
  return removed
}
