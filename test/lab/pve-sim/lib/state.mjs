// The simulated node's state under $HDR_LAB_DIR/pve/: guest configs (pmxcfs layout), storages,
// run state, backup jobs, lab bindings. Layout of /etc/pve from proxmox/pve-cluster src/PVE/Cluster.pm.
import fs from 'node:fs'
import path from 'node:path'

export const NODE = 'pve'
export const labDir = process.env.HDR_LAB_DIR || '/tmp/hdr-lab'
export const pveDir = path.join(labDir, 'pve')
export const etcPve = path.join(pveDir, 'etc/pve')
export const runDir = path.join(pveDir, 'run')
export const confDir = (type) => path.join(etcPve, 'nodes', NODE, type === 'qemu' ? 'qemu-server' : 'lxc')
export const confPath = (type, vmid) => path.join(confDir(type), `${vmid}.conf`)
export const now = () => (process.env.HDR_SIM_NOW ? Date.parse(process.env.HDR_SIM_NOW) : Date.now())

/** An expected failure: message (stdout/stderr already decided by the thrower) and exit code. */
export class SimError extends Error {
  constructor(message, exit = 255) { super(message); this.exit = exit }
}

export const readJson = (file, dflt) => { try { return JSON.parse(fs.readFileSync(file, 'utf8')) } catch { return dflt } }
export function writeJson(file, value) {
  fs.mkdirSync(path.dirname(file), { recursive: true })
  const tmp = `${file}.${process.pid}.tmp`
  fs.writeFileSync(tmp, JSON.stringify(value, null, 1) + '\n')
  fs.renameSync(tmp, file)
}
export function writeFileAtomic(file, text) {
  fs.mkdirSync(path.dirname(file), { recursive: true })
  const tmp = `${file}.${process.pid}.tmp`
  fs.writeFileSync(tmp, text)
  fs.renameSync(tmp, file)
}

// ---- guests ----
/** Which guest type owns vmid, or null. (pve-cluster Cluster.pm get_vmlist / check_vmid_unused) */
export function guestType(vmid) {
  if (fs.existsSync(confPath('qemu', vmid))) return 'qemu'
  if (fs.existsSync(confPath('lxc', vmid))) return 'lxc'
  return null
}
export function listGuests() {
  const out = []
  for (const type of ['qemu', 'lxc']) {
    let names = []
    try { names = fs.readdirSync(confDir(type)) } catch {}
    for (const n of names) { const m = /^(\d+)\.conf$/.exec(n); if (m) out.push({ vmid: Number(m[1]), type }) }
  }
  return out.sort((a, b) => a.vmid - b.vmid)
}

/** Parse a guest config into the main section (ordered key/value plus comment lines). */
export function parseConf(text) {
  const lines = text.split('\n')
  const main = []
  for (const line of lines) {
    if (/^\[/.test(line)) break // snapshots / pending sections are not simulated
    if (line === '') continue
    if (line.startsWith('#')) { main.push({ comment: line }); continue }
    const m = /^([a-z][a-z0-9_-]*):\s*(.*)$/.exec(line)
    if (m) main.push({ key: m[1], value: m[2] })
  }
  return main
}
export const confGet = (entries, key) => entries.find((e) => e.key === key)?.value
export function confSet(entries, key, value) {
  const e = entries.find((x) => x.key === key)
  if (value === undefined) return entries.filter((x) => x.key !== key)
  if (e) e.value = value; else entries.push({ key, value })
  return entries
}
export const printConf = (entries) => entries.map((e) => (e.comment !== undefined ? e.comment : `${e.key}: ${e.value}`)).join('\n') + (entries.length ? '\n' : '')

export function loadConf(type, vmid) {
  const file = confPath(type, vmid)
  // pve-guest-common src/PVE/AbstractConfig.pm load_config
  if (!fs.existsSync(file)) throw new SimError(`Configuration file 'nodes/${NODE}/${type === 'qemu' ? 'qemu-server' : 'lxc'}/${vmid}.conf' does not exist`, 2)
  return parseConf(fs.readFileSync(file, 'utf8'))
}
export const saveConf = (type, vmid, entries) => writeFileAtomic(confPath(type, vmid), printConf(entries))

/** Lab-only binding of a guest to a lab service: `#hdr-bind: s3` in config or pve/binds.json by VMID. */
export function guestBind(entries, vmid) {
  // a guest whose NIC is unplugged (net0 link_down=1) cannot reach or serve its lab service
  if (/(?:^|,)link_down=1(?:,|$)/.test(confGet(entries, 'net0') ?? '')) return null
  const c = entries.find((e) => e.comment && /^#hdr-bind:\s*\S+/.test(e.comment))
  if (c) return c.comment.replace(/^#hdr-bind:\s*/, '').trim()
  return readJson(path.join(pveDir, 'binds.json'), {})[String(vmid)] ?? null
}

/** Guest IP: qemu ipconfig0 ip=…, lxc net0 …,ip=… */
export function guestIp(type, entries) {
  const v = type === 'qemu' ? confGet(entries, 'ipconfig0') : confGet(entries, 'net0')
  const m = /(?:^|,)ip=([0-9.]+)\//.exec(v ?? '')
  return m ? m[1] : null
}
/** The MAC of net0: `virtio=BC:24:…` (qemu-server parse_net) or `hwaddr=BC:24:…` (pve-container). */
export function guestMac(type, entries) {
  const v = confGet(entries, 'net0') ?? ''
  const m = type === 'qemu' ? /(?:^|,)(?:virtio|e1000|e1000e|rtl8139|vmxnet3)=([0-9A-Fa-f:]{17})(?:,|$)/.exec(v) : /(?:^|,)hwaddr=([0-9A-Fa-f:]{17})(?:,|$)/.exec(v)
  return m ? m[1].toLowerCase() : null
}
export const guestName = (type, entries) => confGet(entries, type === 'qemu' ? 'name' : 'hostname') ?? (type === 'qemu' ? `VM` : `CT`)

// ---- run state (one file per guest: races between concurrent commands stay per guest) ----
const runFile = (vmid) => path.join(runDir, `${vmid}.json`)
export const getRun = (vmid) => readJson(runFile(vmid), { running: false, changed: 0, started: 0 })
export function setRun(vmid, running) {
  const t = now()
  const prev = getRun(vmid)
  writeJson(runFile(vmid), { running, changed: t, started: running ? t : prev.started })
}
export const clearRun = (vmid) => fs.rmSync(runFile(vmid), { force: true })

// ---- storages ----
const storageFile = path.join(pveDir, 'storage.json')
/** Storages as defined in pve/storage.json; `path` is relative to pve/. */
export const loadStorages = () => readJson(storageFile, {})
export const saveStorages = (s) => writeJson(storageFile, s)
export function storageDir(st) { return path.join(pveDir, st.path) }
export const dumpDir = (st) => path.join(storageDir(st), 'dump')
export function getStorage(id) {
  const st = loadStorages()[id]
  // pve-storage src/PVE/Storage.pm storage_config
  if (!st) throw new SimError(`storage '${id}' does not exist`)
  return st
}
/** pve-storage src/PVE/Storage.pm activate_storage: inactive storages die with this text */
export function activationError(id, st) {
  if (st.active === 0 || st.active === false) {
    return st.error ?? (st.type === 'dir'
      ? `unable to activate storage '${id}' - directory '${storageDir(st)}' does not exist`
      : `storage '${id}' is not online`)
  }
  return null
}
export function assertActive(id, st) { const e = activationError(id, st); if (e) throw new SimError(e) }

/** Resolve a volid or path to the absolute file path of a backup. (pve-storage Storage.pm path) */
export function volumePath(volid) {
  const m = /^([a-z][a-z0-9_.-]*):(.+)$/i.exec(volid)
  if (!m) return path.resolve(volid)
  const [, sid, rest] = m
  const st = getStorage(sid)
  const b = /^backup\/(.+)$/.exec(rest)
  if (b) return path.join(dumpDir(st), b[1])
  const t = /^vztmpl\/(.+)$/.exec(rest)
  if (t) return path.join(storageDir(st), 'template/cache', t[1])
  const i = /^iso\/(.+)$/.exec(rest)
  if (i) return path.join(storageDir(st), 'template/iso', i[1])
  return path.join(storageDir(st), rest + (st.type === 'lvmthin' && !rest.endsWith('.raw') ? '.raw' : ''))
}

/** Disk image path for a local-lvm volume name (vm-101-disk-0 → images/vm-101-disk-0.raw). */
export const imagePath = (sid, name) => path.join(storageDir(getStorage(sid)), `${name}.raw`)
export const rootfsPath = (sid, name) => path.join(storageDir(getStorage(sid)), name)

/** Next free volume name vm-N-disk-K on a storage (pve-storage Plugin.pm find_free_diskname) */
export function freeDiskName(sid, vmid, taken = new Set()) {
  const dir = storageDir(getStorage(sid))
  for (let k = 0; ; k++) {
    const n = `vm-${vmid}-disk-${k}`
    if (taken.has(n) || fs.existsSync(path.join(dir, n)) || fs.existsSync(path.join(dir, `${n}.raw`))) continue
    return n
  }
}
