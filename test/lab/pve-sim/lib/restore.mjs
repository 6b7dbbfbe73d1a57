// qmrestore and pct restore. Refusals: qemu-server src/PVE/API2/Qemu.pm create_vm and
// pve-container src/PVE/API2/LXC.pm create_vm; the VMA pipeline and its log lines:
// qemu-server src/PVE/QemuServer.pm restore_vma_archive; LXC: pve-container src/PVE/LXC/Create.pm.
import fs from 'node:fs'
import path from 'node:path'
import { randomBytes } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import {
  NODE, SimError, guestType, loadConf, parseConf, printConf, confGet, saveConf, confPath, writeFileAtomic,
  getStorage, assertActive, volumePath, imagePath, rootfsPath, freeDiskName, getRun, setRun, guestBind, now,
} from './state.mjs'
import { archiveInfo, readArchive, decompressor } from './archive.mjs'
import { readVmaHeader, readVma, VmaError } from './vma.mjs'
import { out, err, work, sleep, parseArgs, vmidArg } from './cli.mjs'
import { guestUp, guestDown, runHook } from './guest.mjs'
import { startGuest } from './guests.mjs'
import { dropSshSession, fault } from './faults.mjs'

const DISK_RE = /^(ide|sata|scsi|virtio|efidisk|tpmstate)\d+$/
const hms = (d = new Date()) => d.toTimeString().slice(0, 8) + '.' + String(d.getMilliseconds()).padStart(3, '0')
const gerror = (msg) => `** (process:${process.pid}): ERROR **: ${hms()}: ${msg}`
const cTime = (s) => { const d = new Date(s * 1000); const p = d.toString().split(' '); return `${p[0]} ${p[1]} ${String(d.getDate()).padStart(2, ' ')} ${p[4]} ${p[3]}` }
export const newMac = () => 'BC:24:11:' + [...randomBytes(3)].map((b) => b.toString(16).toUpperCase().padStart(2, '0')).join(':')
const bool = (v) => v === '1' || v === 1 || v === true

/** Resolve ARCHIVE (volid or path) to an existing file, or die like PVE::Storage::abs_filesystem_path. */
function archiveFile(archive) {
  const p = volumePath(archive)
  if (!fs.existsSync(p)) throw new SimError(archive.includes(':') ? `volume '${archive}' does not exist` : `can't find file '${archive}'`)
  return p
}

/** Which volumes (storage, name) a config's disk lines use. */
export function configVolumes(entries) {
  const vols = []
  for (const e of entries) {
    if (!e.key || !(DISK_RE.test(e.key) || /^unused\d+$/.test(e.key) || e.key === 'rootfs' || /^mp\d+$/.test(e.key))) continue
    const m = /^([a-z][a-z0-9_.-]*):((?:vm|subvol|base)-\d+-disk-\d+)/i.exec(e.value)
    if (m && !/media=cdrom/.test(e.value)) vols.push({ key: e.key, sid: m[1], name: m[2], backup: !/(^|,)backup=0(,|$)/.test(e.value) })
  }
  return vols
}
export function freeVolume(sid, name) {
  try { fs.rmSync(imagePath(sid, name), { force: true }); fs.rmSync(rootfsPath(sid, name), { recursive: true, force: true }) } catch {}
}

// ---------------------------------------------------------------------------------------------
export async function qmrestore(argv) {
  const usage = 'qmrestore <archive> <vmid> [OPTIONS]'
  const { pos, opts } = parseArgs(argv, { force: 'bool', storage: 'string', unique: 'bool', start: 'bool', bwlimit: 'int', pool: 'string', 'live-restore': 'bool', 'ha-managed': 'bool' }, usage)
  const archive = pos[0]
  const vmid = vmidArg(pos[1], usage)
  const emsg = `unable to restore VM ${vmid} -`
  // Qemu.pm create_vm → create_and_lock_config → pve-cluster Cluster.pm check_vmid_unused: "exists" comes first
  const existing = guestType(vmid)
  if (existing && (!opts.force || existing !== 'qemu')) throw new SimError(`${emsg} ${existing === 'qemu' ? 'VM' : 'CT'} ${vmid} already exists on node '${NODE}'`)
  const file = archiveFile(archive ?? '')
  const info = archiveInfo(file)
  if (!info || info.kind !== 'vma') throw new SimError(`${emsg} unable to detect disk size - please specify size on storage`)
  let oldConf = null
  if (existing) {
    oldConf = loadConf('qemu', vmid)
    const lock = confGet(oldConf, 'lock')
    if (lock) throw new SimError(`${emsg} VM is locked (${lock})`) // pve-guest-common AbstractConfig.pm check_lock
    if (bool(confGet(oldConf, 'protection'))) throw new SimError(`${emsg} - protection mode enabled`) // AbstractConfig.pm check_protection
    if (getRun(vmid).running) throw new SimError(`${emsg} vm is running`) // Qemu.pm create_vm
  }
  if (opts.storage) { const st = getStorage(opts.storage); assertActive(opts.storage, st) }
  if (opts['live-restore']) throw new SimError('live-restore is only compatible with backup images from a Proxmox Backup Server')

  // the task: the config is created (empty, locked) before any data is read — Qemu.pm create_vm
  if (!existing) writeFileAtomic(confPath('qemu', vmid), '')
  const tmp = `/var/tmp/vzdumptmp${process.pid}`
  const dec = decompressor(info.comp)
  const cmd = dec ? `${dec.join(' ')} ${file} | vma extract -v -r ${tmp}.fifo - ${tmp}` : `vma extract -v -r ${tmp}.fifo ${file} ${tmp}`
  const failTail = () => {
    out("no lock found trying to remove 'create'  lock")
    out(`error before or during data restore, some or all disks were not completely restored. VM ${vmid} state is NOT cleaned up.`)
  }
  const code = await work(async () => {
    const t0 = now()
    out(`restore vma archive: ${cmd}`)
    const raw = readArchive(file, info.comp)
    let header
    try { header = readVmaHeader(raw.data) } catch (e) {
      if (!(e instanceof VmaError)) throw e
      // vma dies at once; restore_vma_archive waits for the header on the fifo under alarm(60)
      out(gerror(e.message))
      const secs = Number(process.env.HDR_SIM_VMA_TIMEOUT ?? 60)
      await sleep(secs * 1000)
      failTail()
      throw new SimError(`command 'set -o pipefail && ${cmd}' failed: got timeout reading VMA header - corrupted?`, 255)
    }
    const cfgBlob = header.configs.find((c) => c.name === 'qemu-server.conf')
    for (const c of header.configs) out(`CFG: size: ${c.data.length} name: ${c.name}`)
    for (const d of header.devices) out(`DEV: dev_id=${d.id} size: ${d.size} devname: ${d.name}`)
    out(`CTIME: ${cTime(header.ctime)}`)
    const backupConf = parseConf(cfgBlob ? cfgBlob.data.toString('utf8') : '')
    const map = {}
    for (const e of backupConf) {
      const m = e.comment && /^#qmdump#map:(\S+?):(\S+?):(\S*?):(\S*?):$/.exec(e.comment)
      if (m) map[m[2]] = { virtdev: m[1], storeid: m[3], format: m[4] }
    }
    // lab fault: the SSH session dies here, mid-restore; the restore goes on without anyone watching
    if (fault('qmrestore') === 'ssh-lost') dropSshSession()
    // past the header: an overwrite now destroys the old disks (restore_vma_archive with force)
    const oldBind = oldConf ? guestBind(oldConf, vmid) : null
    const keepUnused = []
    if (oldConf) {
      for (const v of configVolumes(oldConf)) { if (v.backup || v.key.startsWith('unused')) freeVolume(v.sid, v.name); else keepUnused.push(`${v.sid}:${v.name}`) }
      if (oldBind) runHook(oldBind, 'wipe', vmid)
    }
    const allocated = []
    const mapTo = {}
    let failed = null
    try {
      const taken = new Set()
      for (const d of header.devices) {
        if (d.name === 'vmstate') continue
        const m = map[d.name]
        const sid = opts.storage ?? (m?.storeid && m.storeid !== '' ? m.storeid : 'local-lvm')
        const st = getStorage(sid)
        assertActive(sid, st)
        if (!st.content.split(',').includes('images')) throw new Error(`storage '${sid}' does not support vm images`)
        const name = freeDiskName(sid, vmid, taken); taken.add(name)
        const need = d.size
        if (typeof st.avail === 'number' && st.avail < need) throw new Error(`lvcreate 'pve/${name}' error:   Volume group "pve" has insufficient free space (${Math.floor(st.avail / 4194304)} extents): ${Math.ceil(need / 4194304)} required.`)
        fs.mkdirSync(path.dirname(imagePath(sid, name)), { recursive: true })
        fs.writeFileSync(imagePath(sid, name), '')
        allocated.push({ sid, name })
        out(`  Logical volume "${name}" created.`)
        out(`new volume ID is '${sid}:${name}'`)
        mapTo[d.name] = { sid, name, virtdev: m?.virtdev ?? d.name.replace(/^drive-/, '') }
        out(`map '${d.name}' to '/dev/pve/${name}' (write zeros = 0)`)
      }
      let result
      try {
        result = readVma(raw.data, { mode: 'restore', onProgress: (p, b) => out(`progress ${p}% (read ${b} bytes, duration ${Math.floor((now() - t0) / 1000)} sec)`) })
      } catch (e) {
        if (!(e instanceof VmaError)) throw e
        out(gerror(`restore failed - ${e.message}`))
        out(`/bin/bash: line 1: ${process.pid + 1} Trace/breakpoint trap         vma extract -v -r ${tmp}.fifo - ${tmp}`)
        failed = 'exit code 133'
      }
      if (!failed && raw.status !== 0) { out(raw.stderr.trim()); failed = `exit code ${raw.status}` }
      if (failed) throw new Error(`command 'set -o pipefail && ${cmd}' failed: ${failed}`)
      let total = 0, sparse = 0
      for (const d of result.devices) {
        const t = mapTo[d.name]
        if (!t || !d.data) continue
        fs.writeFileSync(imagePath(t.sid, t.name), d.data)
        total += d.size
        for (let o = 0; o < d.data.length; o += 4096) { if (d.data.subarray(o, o + 4096).every((x) => x === 0)) sparse += Math.min(4096, d.data.length - o) }
      }
      out(`total bytes read ${total}, sparse bytes ${sparse} (${total ? ((sparse * 100) / total).toFixed(3).replace(/\.?0+$/, '') : 0}%)`)
      out(`space reduction due to 4K zero blocks ${total ? ((sparse * 100) / total).toFixed(3).replace(/\.?0+$/, '') : 0}%`)
      out('rescan volumes...')
    } catch (e) {
      // restore_vma_archive error path: free what was allocated, leave the config as it is
      for (const v of allocated) { freeVolume(v.sid, v.name); out(`  Logical volume "${v.name}" successfully removed.`); out(`temporary volume '${v.sid}:${v.name}' sucessfuly removed`) }
      failTail()
      throw new SimError(e.message, 255)
    }
    // restore_update_config_line: map lines dropped, disks re-pointed, backup=0 disks commented
    const conf = []
    for (const e of backupConf) {
      if (e.comment !== undefined) { if (!e.comment.startsWith('#qmdump#')) conf.push(e); continue }
      if (e.key === 'lock') continue
      if (DISK_RE.test(e.key)) {
        const t = Object.values(mapTo).find((x) => x.virtdev === e.key)
        if (/(^|,)backup=0(,|$)/.test(e.value)) { conf.push({ comment: `#${e.key}: ${e.value}` }); continue }
        if (t) { conf.push({ key: e.key, value: e.value.replace(/^[^,]+/, `${t.sid}:${t.name}`) }); continue }
      }
      if (opts.unique && /^net\d+$/.test(e.key)) { conf.push({ key: e.key, value: e.value.replace(/^(\w+)=([0-9A-Fa-f:]{17})/, (_, model) => `${model}=${newMac()}`) }); continue }
      conf.push(e)
    }
    keepUnused.forEach((v, i) => conf.push({ key: `unused${i}`, value: v }))
    saveConf('qemu', vmid, conf)
    setRun(vmid, false)
    return 0
  })
  // Qemu.pm create_vm, after the restore's lock is released: `print "Execute autostart\n"; eval {
  // vm_start(…) }; warn $@ if $@;` — a start that fails is a warning in the task's output: exit 0.
  // Outside work(): the guest's boot is not the restore's work (as with a separate qm start).
  if (code === 0 && opts.start) {
    out('Execute autostart')
    try { startGuest('qemu', vmid) } catch (e) { if (!(e instanceof SimError)) throw e; out(e.message) }
  }
  return code
}

// ---------------------------------------------------------------------------------------------
export async function pctRestore(argv) {
  const usage = 'pct restore <vmid> <ostemplate> [OPTIONS]'
  const { pos, opts } = parseArgs(argv, { force: 'bool', storage: 'string', unique: 'bool', start: 'bool', rootfs: 'string', 'ignore-unpack-errors': 'bool', bwlimit: 'int', pool: 'string', 'ha-managed': 'bool', unprivileged: 'bool' }, usage)
  const vmid = vmidArg(pos[0], usage)
  const archive = pos[1] ?? ''
  const existing = guestType(vmid)
  // pve-container LXC.pm create_vm: check_vmid_unused unless (same container exists && restore && force)
  if (existing && !(existing === 'lxc' && opts.force)) throw new SimError(`${existing === 'qemu' ? 'VM' : 'CT'} ${vmid} already exists on node '${NODE}'`)
  let oldConf = null
  if (existing) {
    if (getRun(vmid).running) throw new SimError("can't overwrite running container")
    oldConf = loadConf('lxc', vmid)
    if (bool(confGet(oldConf, 'protection'))) throw new SimError(`unable to restore CT ${vmid} - protection mode enabled`)
  }
  const file = archiveFile(archive)
  const sid = opts.storage ?? 'local'
  const st = getStorage(sid)
  // LXC.pm create_vm $check_and_activate_storage: raise_param_exc → printed with the usage line
  if (!st.content.split(',').includes('rootdir')) throw new SimError(`400 Parameter verification failed.\nstorage: storage '${sid}' does not support container directories\n${usage}`)
  assertActive(sid, st)
  const info = archiveInfo(file)
  const volid = archive.includes(':') ? archive : file
  return work(async () => {
    out(`recovering backed-up configuration from '${volid}'`)
    const raw = readArchive(file, info?.comp ?? null)
    const tarCfg = spawnSync('tar', ['-xOf', '-', './etc/vzdump/pct.conf'], { input: raw.data, maxBuffer: 1 << 30 })
    if (tarCfg.status !== 0 || !tarCfg.stdout.length) {
      if (!existing) writeFileAtomic(confPath('lxc', vmid), '')
      throw new SimError(`unable to restore CT ${vmid} - unable to read backed-up configuration from '${volid}'`)
    }
    // past this point an overwrite has destroyed the old container (LXC.pm create_vm with force)
    if (oldConf) {
      for (const v of configVolumes(oldConf)) freeVolume(v.sid, v.name)
      const b = guestBind(oldConf, vmid); if (b) runHook(b, 'wipe', vmid)
    }
    writeFileAtomic(confPath('lxc', vmid), '')
    const backupConf = parseConf(tarCfg.stdout.toString('utf8'))
    const rootfs = confGet(backupConf, 'rootfs') ?? `${sid}:vm-${vmid}-disk-0,size=1G`
    const name = freeDiskName(sid, vmid)
    const dir = rootfsPath(sid, name)
    fs.mkdirSync(dir, { recursive: true })
    out(`  Logical volume "${name}" created.`)
    out(`Creating filesystem with 262144 4k blocks and 65536 inodes`)
    out(`restoring '${volid}' now..`)
    out(`extracting archive '${file}'`)
    const x = spawnSync('tar', ['-xpf', '-', '--numeric-owner', '-C', dir, '--exclude', './etc/vzdump', '--exclude', './etc/vzdump/*'], { input: raw.data, maxBuffer: 1 << 30 })
    const bad = x.status !== 0 || raw.status !== 0
    if (bad) {
      if (raw.status !== 0) out(raw.stderr.trim())
      const te = x.stderr.toString('utf8').trim(); if (te) out(te)
      fs.rmSync(dir, { recursive: true, force: true })
      out(`  Logical volume "${name}" successfully removed.`)
      throw new SimError(`unable to restore CT ${vmid} - command 'tar xpf - ${info?.comp === 'zst' ? '--zstd ' : info?.comp === 'gz' ? '-z ' : info?.comp === 'lzo' ? '--lzop ' : ''}--totals --one-file-system -p --sparse --numeric-owner --acls --xattrs '--xattrs-include=user.*' '--xattrs-include=security.capability' '--warning=no-file-ignored' '--warning=no-xattr-write' -C /var/lib/lxc/${vmid}/rootfs --skip-old-files --anchored --exclude './dev/*'' failed: exit code 2`)
    }
    out(`Total bytes read: ${raw.data.length} (${(raw.data.length / 1048576).toFixed(0)}MiB, 100MiB/s)`)
    out('Detected container architecture: amd64')
    out('merging backed-up configuration into new configuration...')
    const conf = []
    for (const e of backupConf) {
      if (e.key === 'lock') continue
      if (e.key === 'rootfs') { conf.push({ key: 'rootfs', value: rootfs.replace(/^[^,]+/, `${sid}:${name}`) }); continue }
      if (opts.unique && /^net\d+$/.test(e.key ?? '')) { conf.push({ key: e.key, value: e.value.replace(/hwaddr=[0-9A-Fa-f:]{17}/, `hwaddr=${newMac()}`) }); continue }
      conf.push(e)
    }
    saveConf('lxc', vmid, conf)
    setRun(vmid, false)
    if (opts.start) startGuest('lxc', vmid)
    return 0
  })
}
