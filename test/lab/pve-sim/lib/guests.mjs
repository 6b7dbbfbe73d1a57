// Guest lifecycle for qm and pct: status/config/set/start/stop/shutdown/destroy/guest cmd|exec/exec/create.
// Messages: qemu-server src/PVE/CLI/qm.pm, src/PVE/API2/Qemu.pm, src/PVE/QemuServer.pm,
// src/PVE/QemuServer/Agent.pm; pve-container src/PVE/CLI/pct.pm, src/PVE/API2/LXC.pm, src/PVE/LXC.pm.
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import {
  NODE, SimError, guestType, loadConf, saveConf, confGet, confSet, confPath, getRun, setRun, clearRun, guestBind,
  getStorage, assertActive, volumePath, rootfsPath, freeDiskName, now, writeFileAtomic,
} from './state.mjs'
import { out, err, parseArgs, vmidArg } from './cli.mjs'
import { guestUp, guestDown, guestPid, runHook, nsName, vmBoots, ctRoot } from './guest.mjs'
import { configVolumes, freeVolume, newMac } from './restore.mjs'
import { fault } from './faults.mjs'

const label = (type) => (type === 'qemu' ? 'VM' : 'CT')
const lag = () => Number(process.env.HDR_SIM_RESOURCES_LAG ?? 10) * 1000

/** Config of an existing guest of this type; missing → AbstractConfig.pm load_config message, exit 2. */
const need = (type, vmid) => loadConf(type, vmid)
function checkLock(type, conf) {
  const lock = confGet(conf, 'lock')
  if (lock) throw new SimError(`${label(type)} is locked (${lock})`) // AbstractConfig.pm check_lock
}

export function startGuest(type, vmid) {
  const conf = need(type, vmid)
  checkLock(type, conf)
  if (getRun(vmid).running) throw new SimError(type === 'qemu' ? `VM ${vmid} already running` : `CT ${vmid} already running`)
  // a disk whose volume is gone cannot be activated (lvm: Failed to find logical volume)
  for (const v of configVolumes(conf)) {
    if (v.key.startsWith('unused')) continue
    const p = type === 'qemu' ? volumePath(`${v.sid}:${v.name}`) : rootfsPath(v.sid, v.name)
    if (!fs.existsSync(p)) throw new SimError(`can't activate LV '/dev/pve/${v.name}':   Failed to find logical volume "pve/${v.name}"`)
  }
  // the lab's fault 'start': the hypervisor refuses (e.g. a passthrough device gone), after the checks
  const f = fault('start')
  if (f) throw new SimError(f)
  guestUp(type, vmid, conf)
  setRun(vmid, true)
}

function stopGuest(type, vmid, verb) {
  const file = confPath(type, vmid)
  // qm stop/shutdown of a missing VM: QemuServer.pm check_running / vm_stop
  if (!fs.existsSync(file)) {
    if (type === 'qemu') throw new SimError(`unable to find configuration file for VM ${vmid} on node '${NODE}'`, 2)
    need(type, vmid)
  }
  const conf = need(type, vmid)
  if (!getRun(vmid).running) {
    if (type === 'lxc') throw new SimError(`CT ${vmid} not running`) // LXC.pm vm_stop / API2/LXC/Status.pm
    return // qm stop of a stopped VM succeeds (QemuServer.pm vm_stop returns early)
  }
  guestDown(vmid, conf)
  setRun(vmid, false)
}

export async function guestCommand(type, argv) {
  const tool = type === 'qemu' ? 'qm' : 'pct'
  const [sub, ...rest] = argv
  const usage = (u) => `${tool} ${sub} ${u}`
  switch (sub) {
    case 'status': {
      const { pos } = parseArgs(rest, { verbose: 'bool' }, usage('<vmid> [OPTIONS]'))
      const vmid = vmidArg(pos[0], usage('<vmid> [OPTIONS]'))
      need(type, vmid)
      out(`status: ${getRun(vmid).running ? 'running' : 'stopped'}`)
      return 0
    }
    case 'config': {
      const { pos } = parseArgs(rest, { current: 'bool', snapshot: 'string' }, usage('<vmid> [OPTIONS]'))
      const vmid = vmidArg(pos[0], usage('<vmid> [OPTIONS]'))
      const conf = need(type, vmid)
      // qm config prints keys sorted, without comment lines except the description
      const desc = conf.filter((e) => e.comment !== undefined && !e.comment.startsWith('#qmdump#')).map((e) => e.comment.slice(1))
      const keys = conf.filter((e) => e.key !== undefined).sort((a, b) => a.key.localeCompare(b.key))
      if (desc.length) out(`description: ${desc.join('%0A')}`)
      for (const e of keys) out(`${e.key}: ${e.value}`)
      return 0
    }
    case 'start': {
      const { pos } = parseArgs(rest, { timeout: 'int', skiplock: 'bool' }, usage('<vmid> [OPTIONS]'))
      startGuest(type, vmidArg(pos[0], usage('<vmid> [OPTIONS]')))
      return 0
    }
    case 'stop': case 'shutdown': {
      const { pos } = parseArgs(rest, { timeout: 'int', skiplock: 'bool', forceStop: 'bool', 'force-stop': 'bool', keepActive: 'bool', 'overrule-shutdown': 'bool' }, usage('<vmid> [OPTIONS]'))
      stopGuest(type, vmidArg(pos[0], usage('<vmid> [OPTIONS]')), sub)
      return 0
    }
    case 'destroy': {
      const { pos } = parseArgs(rest, { purge: 'bool', 'destroy-unreferenced-disks': 'bool', skiplock: 'bool', force: 'bool' }, usage('<vmid> [OPTIONS]'))
      const vmid = vmidArg(pos[0], usage('<vmid> [OPTIONS]'))
      const conf = need(type, vmid)
      checkLock(type, conf)
      if (confGet(conf, 'protection') === '1') throw new SimError(`can't remove ${label(type)} ${vmid} - protection mode enabled`)
      if (getRun(vmid).running) throw new SimError(type === 'qemu' ? `VM ${vmid} is running - destroy failed` : `CT ${vmid} is running - destroy failed`)
      const bind = guestBind(conf, vmid)
      if (bind) runHook(bind, 'wipe', vmid)
      for (const v of configVolumes(conf)) freeVolume(v.sid, v.name)
      fs.rmSync(confPath(type, vmid), { force: true })
      clearRun(vmid)
      return 0
    }
    case 'guest': {
      // qm guest cmd N ping|get-osinfo, qm guest exec N -- CMD (CLI/qm.pm guest cmd/exec,
      // $print_agent_result; API2/Qemu/Agent.pm). Agent.pm assert_agent_available first.
      if (type !== 'qemu' || (rest[0] !== 'cmd' && rest[0] !== 'exec')) throw new SimError(`unknown command '${tool} ${argv.join(' ')}'`)
      const vmid = vmidArg(rest[1], `qm guest ${rest[0]} <vmid> ${rest[0] === 'cmd' ? '<command>' : '[<extra-args>]'}`)
      const conf = need(type, vmid)
      const agent = confGet(conf, 'agent') ?? ''
      if (!/^(1|enabled=1)/.test(agent)) throw new SimError('No QEMU guest agent configured')
      const run = getRun(vmid)
      if (!run.running) throw new SimError(`VM ${vmid} is not running`)
      // the agent is a program of the guest OS: not up while it boots, never when the OS does not boot
      if (now() - run.started < lag() || !vmBoots(conf)) throw new SimError('QEMU guest agent is not running')
      if (rest[0] === 'exec') return agentExec(vmid, rest.slice(rest[2] === '--' ? 3 : 2))
      const command = rest[2]
      if (command === 'ping') return 0 // an empty hash: prints nothing
      if (command === 'get-osinfo') { out(perlPretty(OSINFO)); return 0 }
      throw new SimError(`400 Parameter verification failed.\ncommand: value '${command ?? ''}' does not have a value in the enumeration 'fsfreeze-freeze, fsfreeze-status, fsfreeze-thaw, fstrim, get-fsinfo, get-host-name, get-memory-block-info, get-memory-blocks, get-osinfo, get-time, get-timezone, get-users, get-vcpus, info, network-get-interfaces, ping, shutdown, suspend-disk, suspend-hybrid, suspend-ram'\nqm guest cmd <vmid> <command>`)
    }
    case 'set':
      return setGuest(type, rest)
    case 'exec': {
      // pve-container src/PVE/CLI/pct.pm exec: load_config (missing CT → exit 2), "missing command",
      // then exec('lxc-attach', '-n', $vmid, '--', @cmd): the command runs inside the container (its
      // root filesystem, its network) with stdin/stdout/stderr passed through, and its exit status.
      if (type !== 'lxc') break
      const vmid = vmidArg(rest[0], 'pct exec <vmid> [<extra-args>]')
      const conf = need(type, vmid)
      if (!getRun(vmid).running) throw new SimError(`CT ${vmid} not running`)
      const cmd = rest.slice(rest[1] === '--' ? 2 : 1)
      if (!cmd.length) throw new SimError('missing command')
      // A CT made from a template has an OS tree: the command runs in it (chroot). The fixture CTs,
      // restored from the lab's small backups, hold no OS tree: it runs in their namespaces instead.
      const root = ctRoot(conf)
      if (root && fs.existsSync(path.join(root, 'bin'))) return execInCt(vmid, conf, cmd)
      const [bin, ...args] = insideGuest(vmid, cmd)
      const r = spawnSync(bin ?? 'true', args, { stdio: 'inherit' })
      return r.status ?? 255
    }
    case 'create': {
      if (type !== 'lxc') break
      return pctCreate(rest)
    }
  }
  throw new SimError(`unknown command '${tool} ${sub ?? ''}'\nUSAGE: ${tool} <COMMAND> [ARGS] [OPTIONS]`, 255)
}

/** pct create N TEMPLATE --hostname H --net0 … (pve-container src/PVE/API2/LXC.pm create_vm). */
async function pctCreate(argv) {
  const usage = 'pct create <vmid> <ostemplate> [OPTIONS]'
  const { pos, opts } = parseArgs(argv, { hostname: 'string', net0: 'string', cores: 'int', memory: 'int', swap: 'int', rootfs: 'string', unprivileged: 'bool', storage: 'string', start: 'bool', password: 'string', 'ssh-public-keys': 'string', features: 'string', onboot: 'bool', ostype: 'string', nameserver: 'string', searchdomain: 'string', tags: 'string', description: 'string' }, usage)
  const vmid = vmidArg(pos[0], usage)
  const existing = guestType(vmid)
  if (existing) throw new SimError(`${label(existing)} ${vmid} already exists on node '${NODE}'`)
  const tpl = pos[1] ?? ''
  const tplPath = volumePath(tpl)
  if (!fs.existsSync(tplPath)) throw new SimError(`volume '${tpl}' does not exist`)
  let sid = opts.storage ?? 'local', size = '8'
  if (opts.rootfs) { const m = /^(?:([a-z][a-z0-9_.-]*):)?(\d+(?:\.\d+)?)$/i.exec(opts.rootfs); if (m) { sid = m[1] ?? sid; size = m[2] ?? size } }
  const st = getStorage(sid)
  if (!st.content.split(',').includes('rootdir')) throw new SimError(`400 Parameter verification failed.\nstorage: storage '${sid}' does not support container directories\n${usage}`)
  assertActive(sid, st)
  writeFileAtomic(confPath('lxc', vmid), '')
  const name = freeDiskName(sid, vmid)
  const dir = rootfsPath(sid, name)
  fs.mkdirSync(dir, { recursive: true })
  const comp = tplPath.endsWith('.zst') ? ['--zstd'] : tplPath.endsWith('.gz') ? ['-z'] : []
  const x = spawnSync('tar', ['-xpf', tplPath, ...comp, '-C', dir])
  if (x.status !== 0) { fs.rmSync(dir, { recursive: true, force: true }); throw new SimError(`unable to create CT ${vmid} - command 'tar xpf ${tplPath}' failed: exit code ${x.status}`) }
  out(`  Logical volume "${name}" created.`)
  out(`extracting archive '${tplPath}'`)
  out('Total bytes read: 1048576 (1.0MiB, 100MiB/s)')
  out('Detected container architecture: amd64')
  out(`Creating SSH host key 'ssh_host_ed25519_key' - this may take some time ...`)
  if (opts.hostname) fs.writeFileSync(path.join(dir, 'etc/hostname'), opts.hostname + '\n')
  // pve-container LXC/Config.pm parse_lxc_network: type veth, a random hwaddr when none is given; then
  // print_lxc_network → pve-common JSONSchema.pm print_property_string: the required key (name) first,
  // the others sorted (net0: name=eth0,bridge=vmbr0,gw=…,hwaddr=…,ip=…,type=veth).
  let net0 = opts.net0
  if (net0) {
    const kv = new Map(net0.split(',').filter(Boolean).map((p) => { const i = p.indexOf('='); return [p.slice(0, i), p.slice(i + 1)] }))
    if (!kv.has('hwaddr')) kv.set('hwaddr', newMac())
    kv.set('type', 'veth')
    net0 = [...(kv.has('name') ? [`name=${kv.get('name')}`] : []), ...[...kv].filter(([k]) => k !== 'name').sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}=${v}`)].join(',')
  }
  const conf = [
    { key: 'arch', value: 'amd64' }, { key: 'cores', value: String(opts.cores ?? 1) },
    { key: 'hostname', value: opts.hostname ?? `CT${vmid}` }, { key: 'memory', value: String(opts.memory ?? 512) },
    ...(net0 ? [{ key: 'net0', value: net0 }] : []), { key: 'ostype', value: opts.ostype ?? 'debian' },
    { key: 'rootfs', value: `${sid}:${name},size=${size}G` }, { key: 'swap', value: String(opts.swap ?? 512) },
    ...(opts.unprivileged ? [{ key: 'unprivileged', value: '1' }] : []),
    ...(opts.onboot ? [{ key: 'onboot', value: '1' }] : []),
    ...(opts.features ? [{ key: 'features', value: opts.features }] : []),
  ].sort((a, b) => a.key.localeCompare(b.key))
  saveConf('lxc', vmid, conf)
  setRun(vmid, false)
  if (opts.start) startGuest('lxc', vmid)
  return 0
}

/** A command inside a started guest: in its netns and UTS namespace when it has one (lab guests). */
function insideGuest(vmid, cmd) {
  const pid = guestPid(vmid)
  return pid && fs.existsSync(`/run/netns/${nsName(vmid)}`) ? ['nsenter', '-t', String(pid), '-n', '-u', '--', ...cmd] : cmd
}

/** qemu-ga guest-get-osinfo of the lab's Debian guests (qemu-ga qga/commands-posix.c qmp_guest_get_osinfo). */
const OSINFO = {
  id: 'debian', 'kernel-release': '6.1.0-28-amd64', 'kernel-version': '#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)',
  machine: 'x86_64', name: 'Debian GNU/Linux', 'pretty-name': 'Debian GNU/Linux 12 (bookworm)', version: '12 (bookworm)', 'version-id': '12',
}

/** Perl JSON->new->pretty->canonical output (3-space indent, ` : `), as $print_agent_result prints. */
function perlPretty(v, indent = '') {
  const inner = indent + '   '
  if (Array.isArray(v)) return v.length ? `[\n${v.map((x) => inner + perlPretty(x, inner)).join(',\n')}\n${indent}]` : '[]'
  if (v && typeof v === 'object') {
    const keys = Object.keys(v).sort()
    return keys.length ? `{\n${keys.map((k) => `${inner}${JSON.stringify(k)} : ${perlPretty(v[k], inner)}`).join(',\n')}\n${indent}}` : '{}'
  }
  return JSON.stringify(v)
}

/** qm guest exec N -- CMD: guest-exec + guest-exec-status until exited (CLI/qm.pm exec, Agent.pm qemu_exec_status). */
function agentExec(vmid, cmd) {
  if (!cmd.length) throw new SimError('command or input-data (or both) required')
  const [bin, ...args] = insideGuest(vmid, cmd)
  const r = spawnSync(bin, args, { encoding: 'utf8', timeout: 30_000 })
  if (r.error) throw new SimError(`Agent error: Failed to execute child process “${cmd[0]}” (No such file or directory)`)
  const res = { exitcode: r.status ?? 255, exited: 1 }
  if (r.stdout) res['out-data'] = r.stdout
  if (r.stderr) res['err-data'] = r.stderr
  out(perlPretty(res))
  return 0
}

/**
 * qm set / pct set (qemu-server API2/Qemu.pm update_vm, synchronous for the CLI; pve-container
 * API2/LXC/Config.pm update_vm → LXC/Config.pm update_pct_config). For a stopped guest the change is
 * written at once. qm prints `update VM N: -key value …`; deleting an unset key only warns
 * "cannot delete 'K' - not set in current configuration!"; a locked guest is refused (AbstractConfig.pm
 * check_lock); qemu refuses a balloon larger than memory; pct refuses to delete memory/rootfs/ostype.
 */
function setGuest(type, argv) {
  const tool = type === 'qemu' ? 'qm' : 'pct'
  const usage = `${tool} set <vmid> [OPTIONS]`
  const vmid = vmidArg(argv[0], usage)
  const KEYS = type === 'qemu'
    ? /^(delete|description|onboot|memory|balloon|protection|name|tags|agent|cores|sockets|hookscript|startup|boot|skiplock|revert|(net|hostpci|usb|serial|ipconfig|unused)\d+)$/
    : /^(delete|description|onboot|memory|swap|protection|hostname|tags|cores|hookscript|startup|revert|(net|dev|mp|unused)\d+)$/
  const BOOL = /^(onboot|protection|skiplock)$/
  const errors = [], params = []
  for (let i = 1; i < argv.length; i++) {
    const m = /^--?([a-z][a-z0-9_-]*)(?:=(.*))?$/.exec(argv[i] ?? '')
    if (!m) { errors.push(`vmid: too many arguments`); continue }
    if (!KEYS.test(m[1])) { errors.push(`${m[1]}: property is not defined in schema and the schema does not allow additional properties`); if (m[2] === undefined) i++; continue }
    const value = m[2] ?? argv[++i] ?? ''
    if (BOOL.test(m[1]) && !/^(0|1|true|false|yes|no|on|off)$/i.test(value)) errors.push(`${m[1]}: type check ('boolean') failed - got '${value}'`)
    if (/^(memory|balloon|swap|cores|sockets)$/.test(m[1]) && !/^\d+$/.test(value.replace(/^current=/, ''))) errors.push(`${m[1]}: type check ('integer') failed - got '${value}'`)
    params.push([m[1], BOOL.test(m[1]) ? (/^(1|true|yes|on)$/i.test(value) ? '1' : '0') : value])
  }
  if (errors.length) throw new SimError(`400 Parameter verification failed.\n${errors.join('\n')}\n${usage}`)
  if (!params.length) throw new SimError(`no options specified`)
  let conf = need(type, vmid)
  const skiplock = params.some(([k, v]) => k === 'skiplock' && v === '1')
  if (!skiplock) checkLock(type, conf)
  const deletes = params.filter(([k]) => k === 'delete').flatMap(([, v]) => v.split(/[,; ]/).filter(Boolean))
  const sets = params.filter(([k]) => !/^(delete|skiplock|revert)$/.test(k))
  if (type === 'qemu') {
    const memory = Number((sets.find(([k]) => k === 'memory')?.[1] ?? confGet(conf, 'memory') ?? '512').replace(/^current=/, ''))
    const balloon = Number(sets.find(([k]) => k === 'balloon')?.[1] ?? confGet(conf, 'balloon') ?? 0)
    if (balloon && balloon > memory) throw new SimError('balloon value too large (must be smaller than assigned memory)')
    out(`update VM ${vmid}: ${params.map(([k, v]) => `-${k} ${v}`).join(' ')}`)
  }
  for (const key of deletes) {
    if (type === 'lxc' && /^(memory|rootfs|ostype)$/.test(key) && confGet(conf, key) !== undefined) throw new SimError(`unable to delete required option '${key}'`)
    if (key === 'description' ? !conf.some((e) => e.comment !== undefined && !e.comment.startsWith('#qmdump#')) : confGet(conf, key) === undefined) { err(`cannot delete '${key}' - not set in current configuration!`); continue }
    conf = key === 'description' ? conf.filter((e) => e.comment === undefined || e.comment.startsWith('#qmdump#')) : confSet(conf, key, undefined)
  }
  for (const [key, value] of sets) {
    if (key === 'description') {
      // the description is the comment block at the top of the config (write_vm_config / write_pct_config)
      const lines = value.split('\n').map((l) => ({ comment: `#${l.replace(/%/g, '%25')}` }))
      conf = [...lines, ...conf.filter((e) => e.comment === undefined || e.comment.startsWith('#qmdump#'))]
    } else conf = confSet(conf, key, value)
  }
  saveConf(type, vmid, conf)
  return 0
}

/**
 * lxc-attach stand-in: chroot into the CT's root folder (in its network namespace when it has one).
 * A lab-bound CT (docs/lab.md) whose command started a systemd unit (the template's systemctl marks
 * it) starts the lab service it stands for, as MinIO starting inside the CT would.
 */
function execInCt(vmid, conf, cmd) {
  const root = ctRoot(conf)
  if (!root || !fs.existsSync(path.join(root, 'bin'))) throw new SimError(`lxc-attach: ${vmid}: attach.c: lxc_attach_run_command: Failed to exec "${cmd[0]}": No such file or directory`, 255)
  // LXC gives every container a /dev with the standard character devices (lxc.autodev).
  const dev = path.join(root, 'dev')
  fs.mkdirSync(dev, { recursive: true })
  for (const [name, minor] of [['null', 3], ['zero', 5], ['random', 8], ['urandom', 9]]) {
    if (!fs.existsSync(path.join(dev, name))) spawnSync('mknod', ['-m', '666', path.join(dev, name), 'c', '1', String(minor)])
  }
  const pid = guestPid(vmid)
  const inNs = pid && fs.existsSync(`/run/netns/${nsName(vmid)}`) ? ['nsenter', '-t', String(pid), '-n', '--'] : []
  const env = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', LANG: 'C.UTF-8', TERM: 'dumb', container: 'lxc' }
  const [bin, ...args] = [...inNs, 'chroot', root, ...cmd]
  const r = spawnSync(bin ?? 'chroot', args, { stdio: 'inherit', env })
  const requested = path.join(root, 'run/systemd/hdr/start-requested')
  if (fs.existsSync(requested)) {
    fs.rmSync(requested, { force: true })
    const bind = guestBind(conf, vmid)
    if (bind) runHook(bind, 'start', vmid)
  }
  return r.status ?? 255
}
