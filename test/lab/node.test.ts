// The simulated node "pve" over real OpenSSH, as our scripts see it (ssh -F $labDir/ssh/config pve …).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { up, reset, calls, setStorage, setFault, sshArgs, lock } from './node.ts'
import { BACKUPS } from './seed.ts'
import { readVma } from './pve-sim/lib/vma.mjs'

const labDir = process.env.HDR_LAB_DIR ?? '/tmp/hdr-lab'
const pve = path.join(labDir, 'pve')
const dump = path.join(pve, 'var/lib/vz/dump')
const qconf = (n: number) => path.join(pve, 'etc/pve/nodes/pve/qemu-server', `${n}.conf`)
const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`
function ssh(cmd: string, host = 'pve') {
  const r = spawnSync('ssh', [...sshArgs(labDir), host, cmd], { encoding: 'utf8', maxBuffer: 1 << 26 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}
const last = () => calls(labDir).at(-1)
const vol = (f: string) => `local:backup/${f}`

test.before(async () => { await lock(labDir); await up(labDir) })
test.before.each(async () => { await reset(labDir) })

test('EC-4 qmrestore onto existing VMID without --force: exact refusal, exit 255, nothing changed', () => {
  const before = fs.readFileSync(qconf(101), 'utf8')
  const r = ssh(`qmrestore ${q(vol(BACKUPS.web01[2]))} 101`)
  assert.is(r.status, 255)
  assert.is(r.stdout, '')
  assert.is(r.stderr, "unable to restore VM 101 - VM 101 already exists on node 'pve'\n")
  assert.is(fs.readFileSync(qconf(101), 'utf8'), before)
  assert.equal(last()?.argv, ['qmrestore', vol(BACKUPS.web01[2]), '101'])
  assert.is(last()?.exit, 255)
})

test('order of refusals: "already exists" first, lock/protection/running only with --force', () => {
  fs.appendFileSync(qconf(101), 'lock: backup\n')
  let r = ssh(`qmrestore ${q(vol(BACKUPS.web01[2]))} 101`)
  assert.is(r.stderr, "unable to restore VM 101 - VM 101 already exists on node 'pve'\n")
  r = ssh(`qmrestore ${q(vol(BACKUPS.web01[2]))} 101 --force 1`)
  assert.is(r.stderr, 'unable to restore VM 101 - VM is locked (backup)\n')
  fs.writeFileSync(qconf(101), fs.readFileSync(qconf(101), 'utf8').replace('lock: backup\n', ''))
  r = ssh(`qmrestore ${q(vol(BACKUPS.web01[2]))} 101 --force 1`)
  assert.is(r.stderr, 'unable to restore VM 101 - vm is running\n')
  assert.is(r.status, 255)
  r = ssh(`qmrestore ${q(vol(BACKUPS.dns01[1]))} 110`)
  assert.is(r.stderr, "unable to restore VM 110 - CT 110 already exists on node 'pve'\n")
})

test('qmrestore --start 1 (Qemu.pm create_vm): "Execute autostart" after the restore; a start that fails is only a warning, exit 0', () => {
  assert.is(ssh('qm stop 101').status, 0)
  let r = ssh(`qmrestore ${q(vol(BACKUPS.web01[2]))} 101 --force 1 --start 1`)
  assert.is(r.status, 0, r.stderr)
  assert.match(r.stdout, /\nExecute autostart\n$/)
  assert.is(ssh('qm status 101').stdout, 'status: running\n')
  assert.is(ssh('qm stop 101').status, 0)
  setFault(labDir, { start: 'start failed: QEMU exited with code 1' })
  r = ssh(`qmrestore ${q(vol(BACKUPS.web01[2]))} 101 --force 1 --start 1`)
  assert.is(r.status, 0, r.stderr)
  assert.match(r.stdout, /\nExecute autostart\nstart failed: QEMU exited with code 1\n$/)
  assert.is(ssh('qm status 101').stdout, 'status: stopped\n')
  r = ssh('qm start 101') // the same fault for a plain start: its error, exit 255
  assert.is(r.status, 255)
  assert.is(r.stderr, 'start failed: QEMU exited with code 1\n')
})

test('storage content JSON: the contract fields for every backup on local', () => {
  const r = ssh('pvesh get /nodes/pve/storage/local/content --content backup --output-format json')
  assert.is(r.status, 0)
  const list = JSON.parse(r.stdout) as Record<string, unknown>[]
  const files = [...BACKUPS.web01, ...BACKUPS.dns01, ...BACKUPS.minio, ...BACKUPS.monitoring]
  assert.equal(list.map((e) => e.volid).sort(), files.map(vol).sort())
  for (const e of list) {
    const f = String(e.volid).replace('local:backup/', '')
    const m = /^vzdump-(qemu|lxc)-(\d+)-(\d{4})_(\d\d)_(\d\d)-(\d\d)_(\d\d)_(\d\d)\.(.+)$/.exec(f)
    assert.ok(m, f)
    assert.is(e.format, m?.[9])
    assert.is(e.size, fs.statSync(path.join(dump, f)).size)
    assert.is(e.ctime, new Date(Number(m?.[3]), Number(m?.[4]) - 1, Number(m?.[5]), Number(m?.[6]), Number(m?.[7]), Number(m?.[8])).getTime() / 1000)
    assert.is(e.vmid, Number(m?.[2]))
    assert.is(e.subtype, m?.[1])
    assert.is(e.content, 'backup')
  }
  const byName = (f: string) => list.find((e) => e.volid === vol(f))
  assert.is(byName(BACKUPS.web01[2])?.notes, 'web01')
  assert.is(byName(BACKUPS.web01[0])?.protected, 1)
  assert.is(byName(BACKUPS.web01[1])?.notes, undefined)
  const only = JSON.parse(ssh('pvesh get /nodes/pve/storage/local/content --content backup --vmid 110 --output-format json').stdout) as { vmid: number }[]
  assert.equal(only.map((e) => e.vmid), [110, 110])
})

test('corrupted (truncated) .vma.zst: restore to a new VMID fails 255 and leaves an empty config behind', () => {
  const src = path.join(dump, BACKUPS.web01[1])
  const vma = spawnSync('zcat', [src]).stdout
  const cut = spawnSync('zstd', ['-q', '-c'], { input: vma.subarray(0, 20000) }).stdout
  const bad = 'vzdump-qemu-101-2026_11_26-01_00_00.vma.zst'
  fs.writeFileSync(path.join(dump, bad), cut)
  assert.is(ssh(`pvesm extractconfig ${q(vol(bad))}`).status, 0) // header only: passes a truncated archive
  const r = ssh(`qmrestore ${q(vol(bad))} 301`)
  assert.is(r.status, 255)
  assert.match(r.stdout, /\*\* \(process:\d+\): ERROR \*\*: [\d:.]+: restore failed - short vma extent \(\d+ < \d+\)\n/)
  assert.match(r.stdout, /VM 301 state is NOT cleaned up\.\n$/)
  assert.match(r.stderr, /^command 'set -o pipefail && zstd -q -d -c \S+ \| vma extract -v -r \S+ - \S+' failed: exit code 133\n$/)
  assert.is(fs.readFileSync(qconf(301), 'utf8'), '')
  assert.not.ok(fs.existsSync(path.join(pve, 'images/vm-301-disk-0.raw')))
  const v = ssh(`set -o pipefail; zstd -q -d -c ${q(path.join(dump, bad))} | vma verify -`)
  assert.is(v.status, 133)
})

test('bad VMA header: restore waits HDR_SIM_VMA_TIMEOUT (2 s in the lab) then times out', () => {
  const vma = spawnSync('zcat', [path.join(dump, BACKUPS.web01[1])]).stdout
  vma.writeUInt8((vma.readUInt8(200) ^ 0xff), 200)
  const bad = 'vzdump-qemu-101-2026_11_26-02_00_00.vma.zst'
  fs.writeFileSync(path.join(dump, bad), spawnSync('zstd', ['-q', '-c'], { input: vma }).stdout)
  const t0 = Date.now()
  const r = ssh(`qmrestore ${q(vol(bad))} 302`)
  assert.ok(Date.now() - t0 >= 2000)
  assert.is(r.status, 255)
  assert.match(r.stdout, /: wrong vma header chechsum\n/)
  assert.match(r.stderr, /failed: got timeout reading VMA header - corrupted\?\n$/)
  assert.is(fs.readFileSync(qconf(302), 'utf8'), '')
})

test('EF-003 full restore over 101 with --force after qm stop, then qm start: ping and ssh answer web01', () => {
  assert.is(ssh('qm stop 101').status, 0)
  assert.is(spawnSync('ping', ['-c1', '-W1', '10.251.0.101']).status, 1)
  const r = ssh(`qmrestore ${q(vol(BACKUPS.web01[2]))} 101 --force 1`)
  assert.is(r.status, 0, r.stderr)
  assert.is(r.stderr, '')
  assert.match(r.stdout, /^progress 100% \(read 8388608 bytes, duration \d+ sec\)$/m)
  const conf = fs.readFileSync(qconf(101), 'utf8')
  assert.match(conf, /^scsi0: local-lvm:vm-101-disk-0,iothread=1,size=8M$/m)
  assert.match(conf, /^#scsi1: local-lvm:vm-101-disk-1,backup=0,size=1M$/m)
  assert.match(conf, /^unused0: local-lvm:vm-101-disk-1$/m)
  assert.not.match(conf, /qmdump/)
  // the restored disk is the backup's disk, byte for byte
  const archive = spawnSync('zstd', ['-q', '-d', '-c', path.join(dump, BACKUPS.web01[2])], { maxBuffer: 1 << 26 }).stdout
  const img = readVma(archive, { mode: 'restore' }).devices[0]?.data
  assert.ok(img && fs.readFileSync(path.join(pve, 'images/vm-101-disk-0.raw')).equals(img))
  assert.ok(img?.toString('latin1', 0, 40).startsWith('HDR-LAB disk web01 scsi0 2026-11-25'))
  assert.is(ssh('qm start 101').status, 0)
  assert.is(ssh('qm status 101').stdout, 'status: running\n')
  assert.is(spawnSync('ping', ['-c1', '-W1', '10.251.0.101']).status, 0)
  const h = ssh('hostname', 'root@10.251.0.101')
  assert.is(h.stdout, 'web01\n')
  assert.is(ssh('qm stop 101').status, 0)
  assert.is(spawnSync('ping', ['-c1', '-W1', '10.251.0.101']).status, 1)
})

test('/cluster/resources lags: unknown status and no name right after start', async () => {
  // the lag is read by the reading command: 4 s here (the lab's 1 s is shorter than two simulated
  // commands on a busy machine), then the lab's own 1 s once it has passed
  const lagged = 'HDR_SIM_RESOURCES_LAG=4 '
  const started = Date.now()
  ssh('qm start 102')
  const now = (JSON.parse(ssh(`${lagged}pvesh get /cluster/resources --type vm --output-format json`).stdout) as Record<string, unknown>[]).find((e) => e.vmid === 102)
  assert.equal(now, { id: 'qemu/102', vmid: 102, node: 'pve', type: 'qemu', status: 'unknown' })
  assert.is(ssh(`${lagged}qm guest cmd 102 ping`).stderr, 'QEMU guest agent is not running\n')
  assert.ok(Date.now() - started < 4000, 'asked within the lag')
  await new Promise((r) => setTimeout(r, Math.max(0, 1100 - (Date.now() - started))))
  const later = (JSON.parse(ssh('pvesh get /cluster/resources --type vm --output-format json').stdout) as Record<string, unknown>[]).find((e) => e.vmid === 102)
  assert.is(later?.status, 'running')
  assert.is(later?.name, 'db01')
  const ping = ssh('qm guest cmd 102 ping')
  assert.is(ping.status, 0)
  assert.is(ping.stdout + ping.stderr, '')
})

test('pct restore without --storage: the exact refusal, nothing created', () => {
  const r = ssh(`pct restore 310 ${q(vol(BACKUPS.dns01[1]))}`)
  assert.is(r.status, 255)
  assert.is(r.stderr, "400 Parameter verification failed.\nstorage: storage 'local' does not support container directories\npct restore <vmid> <ostemplate> [OPTIONS]\n")
  assert.not.ok(fs.existsSync(path.join(pve, 'etc/pve/nodes/pve/lxc/310.conf')))
  const ok = ssh(`pct restore 310 ${q(vol(BACKUPS.dns01[1]))} --storage local-lvm`)
  assert.is(ok.status, 0, ok.stderr)
  assert.not.match(ok.stdout, /progress/)
  assert.is(fs.readFileSync(path.join(pve, 'images/vm-310-disk-0/root/marker'), 'utf8'), 'dns01 2026-11-25\n')
  assert.match(fs.readFileSync(path.join(pve, 'etc/pve/nodes/pve/lxc/310.conf'), 'utf8'), /^rootfs: local-lvm:vm-310-disk-0,size=1G$/m)
})

test('vzdump writes a real archive and log that the storage listing then shows', () => {
  const r = ssh('vzdump 101 --storage local --mode snapshot --compress zstd --notes-template {{guestname}}')
  assert.is(r.status, 0, r.stderr)
  const m = /creating vzdump archive '([^']+)'/.exec(r.stdout)
  assert.ok(m)
  const file = path.basename(m?.[1] ?? '')
  assert.match(file, /^vzdump-qemu-101-\d{4}_\d\d_\d\d-\d\d_\d\d_\d\d\.vma\.zst$/)
  assert.match(r.stdout, /^INFO: Finished Backup of VM 101 \(00:00:\d\d\)$/m)
  const list = JSON.parse(ssh('pvesh get /nodes/pve/storage/local/content --content backup --vmid 101 --output-format json').stdout) as Record<string, unknown>[]
  const e = list.find((x) => x.volid === vol(file))
  assert.is(e?.notes, 'web01')
  assert.is(ssh(`zstd -q -d -c "$(pvesm path ${q(vol(file))})" | vma verify -`).status, 0)
  assert.match(fs.readFileSync(path.join(dump, file.replace(/\.vma\.zst$/, '.log')), 'utf8'), /INFO: Finished Backup of VM 101/)
  assert.ok((last()?.work_ms ?? -1) >= 0)
})

test('an argument with "; touch /tmp/x" arrives as one literal argument', () => {
  fs.rmSync('/tmp/x', { force: true })
  const r = ssh(`qm config ${q('101; touch /tmp/x')}`)
  assert.is(r.status, 255)
  assert.equal(last()?.argv, ['qm', 'config', '101; touch /tmp/x'])
  assert.not.ok(fs.existsSync('/tmp/x'))
})

test('inactive storage: zeros, no used_fraction, error on stderr, exit 0', () => {
  setStorage(labDir, 'local', { active: 0 })
  const r = ssh('pvesh get /nodes/pve/storage --output-format json')
  assert.is(r.status, 0)
  assert.is(r.stderr, `unable to activate storage 'local' - directory '${path.join(pve, 'var/lib/vz')}' does not exist\n`)
  const local = (JSON.parse(r.stdout) as Record<string, unknown>[]).find((s) => s.storage === 'local')
  assert.equal(local, { storage: 'local', type: 'dir', content: 'backup,iso,vztmpl,snippets', enabled: 1, active: 0, shared: 0, total: 0, used: 0, avail: 0 })
})

test('qm status / pct stop answers for missing and stopped guests', () => {
  let r = ssh('qm status 999')
  assert.is(r.stderr, "Configuration file 'nodes/pve/qemu-server/999.conf' does not exist\n")
  assert.is(r.status, 2)
  r = ssh('pct stop 110; pct stop 110')
  assert.is(r.stderr, 'CT 110 not running\n')
  assert.is(ssh('qm stop 102').status, 0)
  assert.is(ssh('pvesh get /cluster/nextid --output-format json').stdout, '"100"\n')
})

test.run()
