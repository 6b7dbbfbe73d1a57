// Making guests reachable: a started guest is netns hdr-g<VMID> on bridge hdrbr0 with the guest's
// IP and its own sshd (UTS namespace hostname = guest name). Guests bound to a lab service call
// $HDR_LAB_DIR/hooks/<bind>-{start,stop,wipe} instead. Stands in for qemu-server
// src/PVE/QemuServer.pm vm_start/vm_stop and pve-container src/PVE/LXC.pm vm_start/vm_stop.
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { labDir, runDir, guestBind, guestIp, guestName, pveDir, confGet, rootfsPath } from './state.mjs'

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

/** Bring the guest's network presence up (netns + sshd, or the start hook). */
export function guestUp(type, vmid, entries) {
  const bind = guestBind(entries, vmid)
  if (bind) {
    // A container's service starts with it only when installed and enabled on its disk (systemd's
    // multi-user.target.wants/): a CT fresh from a template starts with nothing in it.
    if (type === 'lxc' && !startEnabledUnits(entries)) return
    return runHook(bind, 'start', vmid)
  }
  const ip = guestIp(type, entries)
  if (!ip || !ip.startsWith('10.251.0.')) return // not on the lab bridge: nothing to reach
  guestNetDown(vmid)
  ensureBridge()
  const ns = nsName(vmid), veth = `hdrv${vmid}`.slice(0, 15)
  ipBatch([`netns add ${ns}`, `link add ${veth} type veth peer name eth0 netns ${ns}`, `link set ${veth} master ${BRIDGE} up`])
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
  spawnSync('ip', ['netns', 'exec', ns, 'unshare', '--uts', 'sh', '-c', `/bin/hostname "$1" && exec /usr/sbin/sshd -f "$2" -E "$3"`, 'sh', name, path.join(dir, 'sshd_config'), path.join(dir, 'sshd.log')], { stdio: 'ignore', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } })
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
