// lib/pve.ts on the node's real answers (captured from the lab node, which follows node-contract.md).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Pve, parseGuestConfig, guestAddress, guestDisks } from '../lib/pve.ts'
import type { Ssh, RemoteResult } from '../lib/ssh.ts'
import { DrError } from '../lib/errors.ts'

const STORAGE = '[{"storage":"local","type":"dir","content":"backup,iso,vztmpl,snippets","enabled":1,"active":1,"shared":0,"total":107374182400,"used":42949672960,"avail":64424509440,"used_fraction":0.4},{"storage":"local-lvm","type":"lvmthin","content":"images,rootdir","enabled":1,"active":1,"shared":0,"total":214748364800,"used":53687091200,"avail":161061273600,"used_fraction":0.25},{"storage":"nas","type":"nfs","content":"backup","enabled":1,"active":0,"shared":1,"total":0,"used":0,"avail":0}]'
const CONTENT = '[{"volid":"local:backup/vzdump-qemu-101-2026_11_25-03_00_02.vma.zst","format":"vma.zst","size":1238,"ctime":1795575602,"content":"backup","subtype":"qemu","vmid":101,"notes":"web01"},{"volid":"local:backup/vzdump-qemu-101-2026_11_20-03_00_02.vma.lzo","format":"vma.lzo","size":11433,"ctime":1795143602,"content":"backup","subtype":"qemu","vmid":101,"protected":1},{"volid":"local:backup/foreign.tar","format":"tar","size":10,"ctime":1,"content":"backup","subtype":"unknown"}]'
const RESOURCES = '[{"id":"qemu/101","vmid":101,"node":"pve","type":"qemu","status":"running","name":"web01","uptime":2185548,"template":0,"tags":"prod;web"},{"id":"qemu/102","vmid":102,"node":"pve","type":"qemu","status":"unknown"},{"id":"lxc/110","vmid":110,"node":"pve","type":"lxc","status":"running","name":"dns01","template":0,"lock":"backup"}]'
const QM_CONFIG = `agent: 1
boot: order=scsi0
ipconfig0: ip=10.251.0.101/24,gw=10.251.0.1
name: web01
net0: virtio=BC:24:11:00:01:01,bridge=vmbr0,firewall=1
scsi0: local-lvm:vm-101-disk-0,iothread=1,size=8M
scsi1: local-lvm:vm-101-disk-1,backup=0,size=1M
ide2: local:iso/debian-12.iso,media=cdrom,size=600M
efidisk0: local-lvm:vm-101-disk-2,efitype=4m,size=4M
unused0: local-lvm:vm-101-disk-9

[before-upgrade]
name: old
scsi0: local-lvm:vm-101-disk-0,size=100G
`
const PCT_CONFIG = `arch: amd64
hostname: dns01
net0: name=eth0,bridge=vmbr0,gw=10.251.0.1,hwaddr=BC:24:11:00:01:10,ip=10.251.0.110/24,type=veth
rootfs: local-lvm:vm-110-disk-0,size=1G
mp0: local-lvm:vm-110-disk-1,mp=/srv,size=1.5G
`

/** An Ssh that answers from canned outputs, keyed by the command line's first words. */
function fakeSsh(answers: Record<string, Partial<RemoteResult>>): Ssh & { sent: string[][] } {
  const sent: string[][] = []
  return {
    sent,
    commands: 0,
    async run(argv: readonly string[]) {
      sent.push([...argv])
      const key = Object.keys(answers).find((k) => argv.join(' ').startsWith(k))
      const a = key ? answers[key]! : { exitCode: 127, stderr: `${argv[0]}: not in the fake` }
      return { exitCode: 0, stdout: '', stderr: '', timedOut: false, ms: 1, ...a }
    },
  } as unknown as Ssh & { sent: string[][] }
}

test('storages: Perl 0/1 booleans, an inactive storage with zero sizes', async () => {
  const ssh = fakeSsh({ 'pvesh get /nodes/pve/storage': { stdout: STORAGE } })
  const list = await new Pve(ssh, 'pve').storages()
  assert.equal(ssh.sent[0], ['pvesh', 'get', '/nodes/pve/storage', '--output-format', 'json'])
  assert.equal(list.map((s) => [s.storage, s.active, s.avail]), [['local', true, 64424509440], ['local-lvm', true, 161061273600], ['nas', false, 0]])
  assert.equal(list[0]!.content, ['backup', 'iso', 'vztmpl', 'snippets'])
})

test('backups: typed entries, protected as 1, foreign files dropped', async () => {
  const ssh = fakeSsh({ 'pvesh get /nodes/pve/storage/local/content': { stdout: CONTENT } })
  const list = await new Pve(ssh, 'pve').backups('local', 101)
  assert.equal(ssh.sent[0], ['pvesh', 'get', '/nodes/pve/storage/local/content', '--content', 'backup', '--vmid', '101', '--output-format', 'json'])
  assert.is(list.length, 2)
  assert.equal(list[0], {
    volid: 'local:backup/vzdump-qemu-101-2026_11_25-03_00_02.vma.zst', storage: 'local', file: 'vzdump-qemu-101-2026_11_25-03_00_02.vma.zst',
    vmid: 101, type: 'qemu', format: 'vma.zst', compression: 'zst', size: 1238, ctime: 1795575602, notes: 'web01', protected: false,
  })
  assert.is(list[1]!.protected, true)
})

test('resources: name and status may be missing; lock is kept', async () => {
  const list = await new Pve(fakeSsh({ 'pvesh get /cluster/resources': { stdout: RESOURCES } }), 'pve').resources()
  assert.equal(list.map((r) => [r.vmid, r.type, r.status, r.name, r.lock]), [[101, 'qemu', 'running', 'web01', undefined], [102, 'qemu', 'unknown', undefined, undefined], [110, 'lxc', 'running', 'dns01', 'backup']])
})

test('nextId: the JSON string answer', async () => {
  assert.is(await new Pve(fakeSsh({ 'pvesh get /cluster/nextid': { stdout: '"103"\n' } }), 'pve').nextId(), 103)
})

test('status and config: a missing guest is "missing" / undefined, not an error', async () => {
  const missing = { exitCode: 2, stderr: "Configuration file 'nodes/pve/qemu-server/999.conf' does not exist\n" }
  const pve = new Pve(fakeSsh({ 'qm status 101': { stdout: 'status: running\n' }, 'qm status 999': missing, 'qm config 999': missing, 'pct config 110': { stdout: PCT_CONFIG } }), 'pve')
  assert.is(await pve.status('qemu', 101), 'running')
  assert.is(await pve.status('qemu', 999), 'missing')
  assert.is(await pve.config('qemu', 999), undefined)
  assert.is((await pve.config('lxc', 110))?.hostname, 'dns01')
})

test('a failed pvesh names the command and the node', async () => {
  const pve = new Pve(fakeSsh({ 'pvesh get /nodes/pve/storage': { exitCode: 255, stderr: "storage 'nope' does not exist\n" } }), 'pve')
  try {
    await pve.storages()
    assert.unreachable()
  } catch (e) {
    assert.instance(e, DrError)
    assert.is((e as Error).message, "`pvesh get /nodes/pve/storage --output-format json` failed on node 'pve': storage 'nope' does not exist")
  }
})

test('parseGuestConfig: the current section only (snapshots are cut), comments skipped', () => {
  const c = parseGuestConfig('#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:\n' + QM_CONFIG)
  assert.is(c.name, 'web01')
  assert.is(c.scsi0, 'local-lvm:vm-101-disk-0,iothread=1,size=8M')
  assert.not.ok('qmdump' in c)
})

test('guestAddress: qemu ipconfig0, lxc net0, none for dhcp', () => {
  assert.is(guestAddress(parseGuestConfig(QM_CONFIG)), '10.251.0.101')
  assert.is(guestAddress(parseGuestConfig(PCT_CONFIG)), '10.251.0.110')
  assert.is(guestAddress({ ipconfig0: 'ip=dhcp', net0: 'virtio=BC:24:11:00:01:01,bridge=vmbr0' }), undefined)
})

test('guestDisks: sizes in bytes; CD-ROMs, backup=0 disks and unused volumes skipped', () => {
  assert.equal(guestDisks(parseGuestConfig(QM_CONFIG)), [
    { key: 'scsi0', storage: 'local-lvm', bytes: 8 * 2 ** 20 },
    { key: 'efidisk0', storage: 'local-lvm', bytes: 4 * 2 ** 20 },
  ])
  assert.equal(guestDisks(parseGuestConfig(PCT_CONFIG)), [
    { key: 'rootfs', storage: 'local-lvm', bytes: 2 ** 30 },
    { key: 'mp0', storage: 'local-lvm', bytes: 1.5 * 2 ** 30 },
  ])
})

test.run()
