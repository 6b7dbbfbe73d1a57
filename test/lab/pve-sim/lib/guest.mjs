// Making guests reachable: a started guest is netns hdr-g<VMID> on bridge hdrbr0 with the guest's
// IP and its own sshd (UTS namespace hostname = guest name). Guests bound to a lab service call
// $HDR_LAB_DIR/hooks/<bind>-{start,stop,wipe} instead. Stands in for qemu-server
// src/PVE/QemuServer.pm vm_start/vm_stop and pve-container src/PVE/LXC.pm vm_start/vm_stop.
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { labDir, runDir, guestBind, guestIp, guestMac, guestName, pveDir, confGet, volumePath, rootfsPath } from './state.mjs'

export const BRIDGE = 'hdrbr0'
export const BRIDGE_IP = '10.251.0.1'
export const nsName = (vmid) => `hdr-g${vmid}`
const ipBatch = (cmds, ns) => {
  const args = ns ? ['-n', ns, '-batch', '-'] : ['-batch', '-']
  const r = spawnSync('ip', ['-force', ...args], { input: cmds.join('\n') + '\n', encoding: 'utf8' })
  return r.status === 0
}

export function ensureBridge() {
  if (fs.existsSync(`/sys/class/net/${BRIDGE}`)) return
  ipBatch([`link add ${BRIDGE} type bridge`, `addr add ${BRIDGE_IP}/24 dev ${BRIDGE}`, `link set ${BRIDGE} up`])
}

/** Run a lab hook if it exists; output goes to pve/hooks.log, never to the command's stdout. */
export function runHook(bind, action, vmid) {
  const hook = path.join(labDir, 'hooks', `${bind}-${action}`)
  if (!fs.existsSync(hook)) return
  const fd = fs.openSync(path.join(pveDir, 'hooks.log'), 'a')
  try { spawnSync(hook, [String(vmid)], { stdio: ['ignore', fd, fd], env: { ...process.env, HDR_LAB_DIR: labDir, VMID: String(vmid) } }) }
  finally { fs.closeSync(fd) }
}

/**
 * Whether a VM's operating system comes up: the firmware (SeaBIOS; OVMF reads the protective MBR of
 * a GPT disk the same way) boots the first disk of `boot: order=…` (else `bootdisk`, else the first
 * disk) only when its sector 0 ends with the boot signature 0x55 0xAA. A guest that does not boot
 * still runs (QEMU is up, `qm status` says running) but nothing inside it answers: no network, and
 * the guest agent, a program of the booted OS, never starts (qemu-server QemuServer/Agent.pm then
 * says "QEMU guest agent is not running").
 */
export function vmBoots(entries) {
  const disk = /^(ide|sata|scsi|virtio)\d+$/
  const isDisk = (k) => disk.test(k) && confGet(entries, k) !== undefined && !/media=cdrom/.test(confGet(entries, k))
  const order = /(?:^|,)order=([^,]+)/.exec(confGet(entries, 'boot') ?? '')?.[1]?.split(';') ?? []
  const key = order.find(isDisk) ?? (isDisk(confGet(entries, 'bootdisk') ?? '') ? confGet(entries, 'bootdisk') : undefined)
    ?? entries.map((e) => e.key).find((k) => k && isDisk(k))
  if (!key) return false
  const vol = /^([a-z][a-z0-9_.-]*:[^,]+)/i.exec(confGet(entries, key) ?? '')?.[1]
  if (!vol) return false
  try {
    const fd = fs.openSync(volumePath(vol), 'r')
    try { const b = Buffer.alloc(2); return fs.readSync(fd, b, 0, 2, 510) === 2 && b[0] === 0x55 && b[1] === 0xaa } finally { fs.closeSync(fd) }
  } catch { return false }
}

/** `link_down=1` on the guest's first NIC (qemu-server QemuServer.pm $net_fmt; pve-container netN): unplugged. */
export const linkDown = (type, entries) => /(?:^|,)link_down=1(?:,|$)/.test(confGet(entries, 'net0') ?? '')

/** Bring the guest's network presence up (netns + sshd, or the start hook). */
export function guestUp(type, vmid, entries) {
  const bind = guestBind(entries, vmid)
  if (bind) {
    // A container's service starts with it only when installed and enabled on its disk (systemd's
    // multi-user.target.wants/): a CT fresh from a template starts with nothing in it.
    if (type === 'lxc' && !startEnabledUnits(entries)) return
    return runHook(bind, 'start', vmid)
  }
  if (type === 'qemu' && !vmBoots(entries)) return // the OS never comes up: nothing answers
  const ip = guestIp(type, entries)
  if (!ip || !ip.startsWith('10.251.0.')) return // not on the lab bridge: nothing to reach
  guestNetDown(vmid)
  ensureBridge()
  const ns = nsName(vmid), veth = `hdrv${vmid}`.slice(0, 15)
  // A guest keeps the MAC of its config across stops, restores and starts (a real VM's NIC does), and
  // announces itself when it comes up: the node forgets what it knew of the address (the gratuitous ARP
  // of a booting guest). With a fresh random MAC per start and the old neighbour entry still REACHABLE,
  // the first packets after `qm start` went to the previous MAC (test/lab/node.test.ts EF-003, flaky).
  // link_down: the guest's NIC exists (its address is configured inside) but its cable is pulled:
  // the host side is not on the bridge and stays down, so nothing outside the guest can reach it.
  const mac = guestMac(type, entries)
  ipBatch([`netns add ${ns}`, `link add ${veth} type veth peer name eth0 netns ${ns}${mac ? ` address ${mac}` : ''}`,
    ...(linkDown(type, entries) ? [`link set ${veth} down`] : [`link set ${veth} master ${BRIDGE} up`, `neigh flush to ${ip} dev ${BRIDGE}`])])
  ipBatch(['link set lo up', `addr add ${ip}/24 dev eth0`, 'link set eth0 up', `route add default via ${BRIDGE_IP}`], ns)
  const dir = path.join(runDir, `g${vmid}`)
  fs.mkdirSync(path.join(dir, 'home'), { recursive: true })
  fs.writeFileSync(path.join(dir, 'home/.bashrc'), '')
  fs.writeFileSync(path.join(dir, 'sshd_config'), [
    `ListenAddress ${ip}:22`,
    `HostKey ${path.join(labDir, 'node/guest_host_ed25519_key')}`,
    `PidFile ${path.join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${path.join(labDir, 'ssh/id_ed25519.pub')}`,
    'PermitRootLogin prohibit-password', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no',
    'UsePAM no', 'StrictModes no', 'PermitUserRC no', 'PrintMotd no', 'PrintLastLog no', 'MaxSessions 50',
    `SetEnv HOME=${path.join(dir, 'home')} PATH=/usr/sbin:/usr/bin:/sbin:/bin`,
    '',
  ].join('\n'))
  const name = guestName(type, entries).replace(/[^A-Za-z0-9.-]/g, '')
  fs.rmSync(path.join(dir, 'sshd.pid'), { force: true })
  spawnSync('ip', ['netns', 'exec', ns, 'unshare', '--uts', 'sh', '-c', `/bin/hostname "$1" && exec /usr/sbin/sshd -f "$2" -E "$3"`, 'sh', name, path.join(dir, 'sshd_config'), path.join(dir, 'sshd.log')], { stdio: 'ignore', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } })
  waitNetUp(ns, veth, dir)
}

const sleepMs = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
const readSys = (p) => { try { return fs.readFileSync(p, 'utf8').trim() } catch { return '' } }

/**
 * `qm start` returns when the guest answers (a booted VM's network is up before anyone can reach it):
 * a new veth carries nothing until the kernel's link watcher has run for both ends (operstate up,
 * queueing discipline attached — it batches events for up to a second) and the bridge port forwards;
 * sshd has listened once it wrote its pid file. Without this wait the first ping after `qm start`
 * was dropped now and then (test/lab/node.test.ts EF-003). Bounded: 5 s, then the guest is as it is.
 */
function waitNetUp(ns, veth, dir) {
  const ready = () =>
    readSys(`/sys/class/net/${veth}/operstate`) === 'up' &&
    readSys(`/sys/class/net/${veth}/brport/state`) === '3' && // BR_STATE_FORWARDING
    readSys(`/sys/class/net/${BRIDGE}/operstate`) === 'up' &&
    / state UP /.test(spawnSync('ip', ['-n', ns, '-o', 'link', 'show', 'eth0'], { encoding: 'utf8' }).stdout ?? '') &&
    readSys(path.join(dir, 'sshd.pid')) !== ''
  for (const t0 = Date.now(); !ready() && Date.now() - t0 < 5000; ) sleepMs(20)
}

/** Tear the guest's netns down: kill everything inside it, delete it and its veth. */
export function guestNetDown(vmid) {
  const ns = nsName(vmid)
  if (!fs.existsSync(`/run/netns/${ns}`)) return
  const r = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' })
  for (const pid of (r.stdout ?? '').split('\n').filter(Boolean)) { try { process.kill(Number(pid), 'SIGKILL') } catch {} }
  ipBatch([`netns del ${ns}`, `link del hdrv${vmid}`.slice(0, 50)])
}

export function guestDown(vmid, entries) {
  const bind = guestBind(entries, vmid)
  const root = ctRoot(entries)
  if (root) fs.rmSync(path.join(root, 'run/systemd/hdr'), { recursive: true, force: true })
  if (bind) return runHook(bind, 'stop', vmid)
  guestNetDown(vmid)
}

/** The guest's sshd pid when its netns is up (for pct exec). */
export function guestPid(vmid) {
  try { return Number(fs.readFileSync(path.join(runDir, `g${vmid}`, 'sshd.pid'), 'utf8').trim()) || null } catch { return null }
}

/** A container's root folder on its storage (rootfs: local-lvm:vm-120-disk-0,size=4G), or null. */
export function ctRoot(entries) {
  const m = /^([a-z][a-z0-9_.-]*):((?:vm|subvol)-\d+-disk-\d+)/i.exec(confGet(entries, 'rootfs') ?? '')
  if (!m) return null
  try { return rootfsPath(m[1], m[2]) } catch { return null }
}

/**
 * systemd at boot: start every unit linked in multi-user.target.wants/ whose ExecStart program is
 * executable (the lab's systemctl records it in /run/systemd/hdr/). Returns how many started.
 */
function startEnabledUnits(entries) {
  const root = ctRoot(entries)
  if (!root) return 0
  const wants = path.join(root, 'etc/systemd/system/multi-user.target.wants')
  let started = 0
  let units = []
  try { units = fs.readdirSync(wants) } catch {}
  for (const unit of units) {
    let text = ''
    try { text = fs.readFileSync(path.join(root, 'etc/systemd/system', unit), 'utf8') } catch { continue }
    const exe = /^ExecStart=[-@+!]?(\S+)/m.exec(text)?.[1]
    try { if (!exe || !(fs.statSync(path.join(root, exe)).mode & 0o111)) continue } catch { continue }
    fs.mkdirSync(path.join(root, 'run/systemd/hdr'), { recursive: true })
    fs.writeFileSync(path.join(root, 'run/systemd/hdr', unit), 'active\n')
    started++
  }
  return started
}
