// lib/restore-test.ts: the pure parts — arguments, the settings that make a copy harmless, the
// guests' own checks from tfvars, and the metrics (with the last success carried over).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { Config } from '../lib/config.ts'
import { DrError } from '../lib/errors.ts'
import { guestChecks, harmlessSettings, parseRestoreTestArgs, restoreTestMetrics, type RestoreTestResult } from '../lib/restore-test.ts'

const usage = (f: () => unknown, text: string) => {
  try {
    f()
  } catch (e) {
    assert.instance(e, DrError)
    assert.is((e as DrError).exitCode, 2)
    assert.match((e as DrError).message, text)
    return
  }
  assert.unreachable(`no usage error for: ${text}`)
}

test('parseRestoreTestArgs: defaults, lists, and each bad flag named', () => {
  assert.is(parseRestoreTestArgs({}), undefined)
  const o = parseRestoreTestArgs({ 'restore-test': true, vmid: '110, 101,110' })!
  assert.equal(o.vmids, [110, 101])
  assert.equal(o.range, { first: 9000, last: 9099 })
  assert.is(o.parallel, 1)
  assert.is(o.memoryCapMiB, undefined)
  assert.is(o.bootTimeoutSec, 300)
  assert.equal(parseRestoreTestArgs({ 'restore-test': true, 'scratch-range': '800-805', parallel: '2', 'memory-cap': '2048' })!.range, { first: 800, last: 805 })
  usage(() => parseRestoreTestArgs({ 'scratch-range': '9000-9001' }), '--scratch-range goes with --restore-test.')
  usage(() => parseRestoreTestArgs({ 'restore-test': true, 'scratch-range': '9099-9000' }), 'Invalid --scratch-range "9099-9000"')
  usage(() => parseRestoreTestArgs({ 'restore-test': true, 'scratch-range': '99-200' }), 'Invalid --scratch-range')
  usage(() => parseRestoreTestArgs({ 'restore-test': true, vmid: '9000' }), '--vmid names an ID inside the scratch range 9000-9099')
  usage(() => parseRestoreTestArgs({ 'restore-test': true, 'memory-cap': '8' }), 'Invalid --memory-cap "8": a whole number, at least 16.')
  usage(() => parseRestoreTestArgs({ 'restore-test': true, 'no-files': true }), 'drop --no-files')
  usage(() => parseRestoreTestArgs({ 'restore-test': true, vmid: '101,abc' }), 'abc')
})

test('harmlessSettings: VM — every NIC unplugged, passthrough/hookscript/protection dropped, memory and balloon capped, notes', () => {
  const conf = {
    name: 'nas', memory: '16384', balloon: '8192', onboot: '1', protection: '1', hookscript: 'local:snippets/hook.pl',
    hostpci0: '0000:01:00,pcie=1', usb0: 'host=1234:5678', net0: 'virtio=BC:24:11:00:00:01,bridge=vmbr0,link_down=0', net1: 'e1000=BC:24:11:00:00:02,bridge=vmbr1',
    scsi0: 'local-lvm:vm-9000-disk-0,size=32G',
  }
  assert.equal(harmlessSettings('qemu', conf, 4096, 'homelab-dr test restore of VM 105'), [
    '--delete', 'hookscript,hostpci0,protection,usb0',
    '--net0', 'virtio=BC:24:11:00:00:01,bridge=vmbr0,link_down=1',
    '--net1', 'e1000=BC:24:11:00:00:02,bridge=vmbr1,link_down=1',
    '--onboot', '0', '--memory', '4096', '--balloon', '4096',
    '--description', 'homelab-dr test restore of VM 105',
  ])
  // under the cap: memory untouched; nothing to delete: no --delete
  assert.equal(harmlessSettings('qemu', { memory: '1024', net0: 'virtio=A,bridge=vmbr0' }, 4096, 'n'), ['--net0', 'virtio=A,bridge=vmbr0,link_down=1', '--onboot', '0', '--description', 'n'])
})

test('harmlessSettings: CT — devN passthrough dropped, hostpci is not a CT key, memory capped', () => {
  const conf = { hostname: 'dns', memory: '2048', dev0: '/dev/dri/renderD128', net0: 'name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:01:10,ip=10.0.0.2/24,type=veth', onboot: '1' }
  assert.equal(harmlessSettings('lxc', conf, 1024, 'n'), ['--delete', 'dev0', '--net0', 'name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:01:10,ip=10.0.0.2/24,type=veth,link_down=1', '--onboot', '0', '--memory', '1024', '--description', 'n'])
})

test('guestChecks: by VMID, else by name; commands and ports, bad entries ignored', () => {
  const cfg = (v: unknown) => ({ vars: new Map([['restore_test_checks', { value: v, file: 'terraform.tfvars' }]]) }) as unknown as Config
  const v = { '101': { commands: ['systemctl is-active nginx', ''], ports: [80, 'x', 70000] }, dns01: { commands: 'true', ports: 53 } }
  assert.equal(guestChecks(cfg(v), 101, 'web01'), [{ kind: 'command', command: 'systemctl is-active nginx' }, { kind: 'port', port: 80 }])
  assert.equal(guestChecks(cfg(v), 110, 'dns01'), [{ kind: 'command', command: 'true' }, { kind: 'port', port: 53 }])
  assert.equal(guestChecks(cfg(v), 102, 'db01'), [])
  assert.equal(guestChecks({ vars: new Map() } as unknown as Config, 101, 'web01'), [])
})

test('restoreTestMetrics: success, seconds (NaN when not reached), last success now or carried over', () => {
  const base: RestoreTestResult = { vmid: 101, type: 'qemu', name: 'web01', status: 'ok', restorable: true, backup: 'local:backup/x', scratchId: 9000, restoreSeconds: 12.5, bootSeconds: 30.1, proof: [], reason: undefined, cleanedUp: true }
  const failed: RestoreTestResult = { ...base, vmid: 110, type: 'lxc', status: 'failed', restorable: false, restoreSeconds: 3, bootSeconds: undefined }
  const never: RestoreTestResult = { ...base, vmid: 120, type: 'lxc', status: 'refused', restorable: false, restoreSeconds: undefined, bootSeconds: undefined }
  const previous = 'homelab_dr_restore_test_last_success_timestamp_seconds{vmid="110",type="lxc"} 1700000000\n'
  const m = restoreTestMetrics([base, failed, never], previous, 1_800_000_000_000)
  for (const line of [
    '# TYPE homelab_dr_restore_test_success gauge',
    'homelab_dr_restore_test_success{vmid="101",type="qemu"} 1',
    'homelab_dr_restore_test_success{vmid="110",type="lxc"} 0',
    'homelab_dr_restore_test_restore_seconds{vmid="101",type="qemu"} 12.5',
    'homelab_dr_restore_test_restore_seconds{vmid="120",type="lxc"} NaN',
    'homelab_dr_restore_test_boot_seconds{vmid="110",type="lxc"} NaN',
    'homelab_dr_restore_test_last_success_timestamp_seconds{vmid="101",type="qemu"} 1800000000',
    'homelab_dr_restore_test_last_success_timestamp_seconds{vmid="110",type="lxc"} 1700000000',
    'homelab_dr_restore_test_last_success_timestamp_seconds{vmid="120",type="lxc"} 0',
  ]) assert.ok(m.split('\n').includes(line), `${line}\n---\n${m}`)
})

test.run()
