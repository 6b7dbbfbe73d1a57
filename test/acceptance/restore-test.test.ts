// verify:backups --restore-test against the lab (issue 13): each guest's newest good backup restored
// into a scratch ID, isolated (link down), booted and proven, destroyed — and production untouched.
// A backup that restores but does not boot is made the way it happens: the VM's disk lost its boot
// sector before the backup (the simulator's firmware then finds nothing to boot, so the guest agent,
// a program of the guest OS, never answers).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn, spawnSync } from 'node:child_process'
import { appendFileSync, cpSync, existsSync, mkdtempSync, openSync, readFileSync, readSync, closeSync, readdirSync, rmSync, writeFileSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runTask, scriptOf } from '../helpers.ts'
import { FIXTURE, LAB_DIR, ROOT, labEnv, labUp } from '../lab/lab.ts'
import * as node from '../lab/node.ts'
import { SIM_BIN } from '../lab/seed.ts'

const PVE = join(LAB_DIR, 'pve')
const QEMU = join(PVE, 'etc/pve/nodes/pve/qemu-server')
const LXC = join(PVE, 'etc/pve/nodes/pve/lxc')
const LATEST_101 = 'vzdump-qemu-101-2026_11_25-03_00_02.vma.zst'
const LATEST_110 = 'vzdump-lxc-110-2026_11_25-03_00_02.tar.zst'
const NOW = '2026-11-26T12:00:00'

function homelab(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hdr-rtest-tf-'))
  cpSync(FIXTURE, dir, { recursive: true, filter: (p) => !p.includes('.terraform') && !/\.tfstate/.test(p) })
  const tfvars = join(dir, 'terraform.tfvars')
  writeFileSync(tfvars, readFileSync(tfvars, 'utf8').replace(/user = "[^"]*"/, `user = "${node.NODE_USER}"`))
  // the guests' own checks: dns01's sshd listens on 22 inside the copy; a command inside web01 through the agent
  appendFileSync(tfvars, '\nrestore_test_checks = {\n  dns01 = { commands = ["test -d /proc/self"], ports = [22] }\n  "101" = { commands = ["true"] }\n}\n')
  for (const e of ['lab', 'minio', 'monitoring']) rmSync(join(dir, 'environments', e), { recursive: true, force: true })
  return dir
}

const TF = homelab()
const METRICS = join(mkdtempSync(join(tmpdir(), 'hdr-rtest-metrics-')), 'homelab_dr.prom')
const ENV = { HOMELAB_TF_DIR: TF, HDR_NOW: NOW }
const rtest = (args: string[], timeoutMs = 120_000) => runTask('verify:backups', ['--restore-test', '--max-age', '80', ...args], { env: ENV, timeoutMs })

/** Every guest config in the scratch range, on the node. */
const scratchGuests = () => [...readdirSync(QEMU), ...readdirSync(LXC)].filter((n) => /^9\d{3}\.conf$/.test(n)).sort()
const conf = (dir: string, id: number) => readFileSync(join(dir, `${id}.conf`), 'utf8')
const runState = (id: number) => readFileSync(join(PVE, 'run', `${id}.json`), 'utf8')
const calls = () => node.calls(LAB_DIR).map((c) => c.argv)

/** Who answers an address on the lab bridge: ping it, then read the bridge's neighbour entry (its MAC). */
function answeredBy(ip: string): string | undefined {
  spawnSync('ip', ['neigh', 'flush', 'to', ip])
  if (spawnSync('ping', ['-c', '1', '-W', '1', ip]).status !== 0) return undefined
  return /lladdr (\S+)/.exec(spawnSync('ip', ['neigh', 'show', 'to', ip], { encoding: 'utf8' }).stdout)?.[1]?.toUpperCase()
}
/** The MAC of eth0 inside a guest's netns. */
const macInside = (vmid: number) => /link\/ether (\S+)/.exec(spawnSync('ip', ['-n', `hdr-g${vmid}`, 'link', 'show', 'eth0'], { encoding: 'utf8' }).stdout)?.[1]?.toUpperCase()
/** Host-side ports of the lab bridge. */
const bridgePorts = () => spawnSync('ip', ['-o', 'link', 'show', 'master', 'hdrbr0'], { encoding: 'utf8' }).stdout

/** Production as it is: configs, run state, and who answers its addresses. */
function production() {
  return {
    web01: conf(QEMU, 101), dns01: conf(LXC, 110), run101: runState(101), run110: runState(110),
    ip101: answeredBy('10.251.0.101'), ip110: answeredBy('10.251.0.110'),
  }
}

/** A newer backup of 101 whose disk lost its boot sector (vzdump by the simulator, dated after the fixture's). */
function unbootableBackupOf101(): string {
  const img = join(PVE, 'images', 'vm-101-disk-0.raw')
  const fd = openSync(img, 'r+')
  writeSync(fd, Buffer.alloc(512), 0, 512, 0)
  closeSync(fd)
  const r = spawnSync(process.execPath, [join(SIM_BIN, 'vzdump'), '101', '--storage', 'local', '--mode', 'snapshot', '--compress', 'zstd'], {
    env: { ...process.env, ...node.nodeEnv(LAB_DIR), HDR_SIM_NOW: '2026-11-26T03:00:02' }, encoding: 'utf8',
  })
  if (r.status !== 0) throw new Error(`vzdump failed: ${r.stdout}${r.stderr}`)
  return 'vzdump-qemu-101-2026_11_26-03_00_02.vma.zst'
}

test.before(async () => {
  await labUp(['node'])
})
test.before.each(async () => {
  await node.reset(LAB_DIR)
  rmSync(METRICS, { force: true })
})
test.after(() => {
  rmSync(TF, { recursive: true, force: true })
  rmSync(join(METRICS, '..'), { recursive: true, force: true })
})

test('RT-1 a good backup passes: VM and CT restored into scratch IDs, isolated, booted and proven, destroyed; production untouched', async () => {
  const before = production()
  assert.is(before.ip101, macInside(101))
  const r = await rtest(['--vmid', '101,110', '--yes', '--memory-cap', '1024', '--metrics', METRICS])
  assert.is(r.code, 0, r.output)
  assert.match(r.output, /✓ VM 101 \(web01\): restorable — vzdump-qemu-101-2026_11_25-03_00_02\.vma\.zst as 9000, restored in [\d.]+ s, booted in [\d.]+ s \(guest agent, Debian GNU\/Linux 12 \(bookworm\), `true` ok\)/)
  assert.match(r.output, /✓ CT 110 \(dns01\): restorable — vzdump-lxc-110-2026_11_25-03_00_02\.tar\.zst as 9001, restored in [\d.]+ s, booted in [\d.]+ s \(pct exec true, `test -d \/proc\/self` ok, port 22 listening\)/)
  assert.match(r.output, '✓ Scratch VM 9000 destroyed')
  assert.match(r.output, '✓ Scratch CT 9001 destroyed')
  assert.match(r.output, /test restores: 2 of 2 restorable and booted/)

  // on the node: copies with new MACs, made harmless before their first start, then destroyed
  const c = calls()
  // each archive read end to end once, by the file check: the test restore's preflight reads only the
  // configuration of the backup that check just passed (issue 14)
  const vmas = readdirSync(join(PVE, 'var/lib/vz/dump')).filter((f) => /^vzdump-qemu-\d+-.*\.vma(\.\w+)?$/.test(f))
  assert.is(c.filter((a) => a.join(' ') === 'vma verify -').length, vmas.length, `one vma verify per VMA file on the node (${vmas.join(', ')})`)
  assert.not.ok(c.some((a) => a[0] === 'pvesm' && a[1] === 'extractconfig' && a[2] === `local:backup/${LATEST_101}`), 'the VMA\'s configuration from its header')
  assert.ok(c.some((a) => a.join(' ') === `pvesm extractconfig local:backup/${LATEST_110}`))
  assert.ok(c.some((a) => a.join(' ') === `qmrestore local:backup/${LATEST_101} 9000 --unique 1`), JSON.stringify(c.filter((a) => a[0] === 'qmrestore')))
  assert.ok(c.some((a) => a.join(' ') === `pct restore 9001 local:backup/${LATEST_110} --storage local-lvm --unique 1`))
  const set = c.find((a) => a[0] === 'qm' && a[1] === 'set')!
  assert.is(set.slice(0, 3).join(' '), 'qm set 9000')
  assert.match(set.join(' '), /--net0 virtio=[0-9A-F:]{17},bridge=vmbr0,firewall=1,link_down=1 --onboot 0 --memory 1024 --description homelab-dr test restore of VM 101 \(web01\) from vzdump-qemu-101-2026_11_25-03_00_02\.vma\.zst, as 9000/)
  assert.not.match(set.join(' '), 'BC:24:11:00:01:01') // the copy has its own MAC (--unique 1)
  const setIdx = c.indexOf(set)
  const startIdx = c.findIndex((a) => a.join(' ') === 'qm start 9000')
  assert.ok(setIdx >= 0 && startIdx > setIdx, 'made harmless before it started')
  assert.ok(c.some((a) => a.join(' ') === 'qm destroy 9000 --purge 1'))
  assert.ok(c.some((a) => a.join(' ') === 'pct destroy 9001 --purge 1'))
  assert.equal(scratchGuests(), [], 'no scratch guest is left on the node')
  assert.not.ok(existsSync(join(PVE, 'images', 'vm-9000-disk-0.raw')), 'its disks are purged')

  // production: same configs, same run state, its addresses answered by the originals only
  assert.equal(production(), before)
  assert.ok(!c.some((a) => ['101', '110'].includes(a[2] ?? '') && ['set', 'stop', 'start', 'destroy', 'shutdown'].includes(a[1] ?? '')), 'no command touched 101 or 110')

  // metrics for the dashboard and alerts
  const m = readFileSync(METRICS, 'utf8')
  assert.match(m, 'homelab_dr_restore_test_success{vmid="101",type="qemu"} 1')
  assert.match(m, 'homelab_dr_restore_test_success{vmid="110",type="lxc"} 1')
  assert.match(m, /homelab_dr_restore_test_restore_seconds\{vmid="101",type="qemu"\} [\d.]+\n/)
  const last = Number(/homelab_dr_restore_test_last_success_timestamp_seconds\{vmid="101",type="qemu"\} (\d+)/.exec(m)?.[1])
  assert.ok(Math.abs(last - Date.now() / 1000) < 300, String(last))
  assert.match(m, 'homelab_dr_backup_files{') // verify:backups' own metrics are still there
})

test('RT-2 a backup that restores but does not boot fails with the reason; the scratch guest is gone; the last success is kept', async () => {
  writeFileSync(METRICS, 'homelab_dr_restore_test_last_success_timestamp_seconds{vmid="101",type="qemu"} 1764000000\n')
  const bad = unbootableBackupOf101()
  const before = production()
  const r = await rtest(['--vmid', '101', '--yes', '--boot-timeout', '3', '--metrics', METRICS])
  assert.is(r.code, 1, r.output)
  assert.match(r.output, `✗ VM 101 (web01): NOT restorable — ${bad} as 9000, restored in`)
  assert.match(r.output, /restored, but it did not boot: the QEMU guest agent did not answer within 3 s \(QEMU guest agent is not running\)/)
  assert.match(r.output, '✓ Scratch VM 9000 destroyed')
  assert.match(r.output, 'test restores: 0 of 1 restorable and booted, 1 NOT restorable')
  assert.equal(scratchGuests(), [])
  assert.equal(production(), before)
  const m = readFileSync(METRICS, 'utf8')
  assert.match(m, 'homelab_dr_restore_test_success{vmid="101",type="qemu"} 0')
  assert.match(m, 'homelab_dr_restore_test_restore_seconds{vmid="101",type="qemu"} ')
  assert.match(m, 'homelab_dr_restore_test_boot_seconds{vmid="101",type="qemu"} NaN')
  assert.match(m, 'homelab_dr_restore_test_last_success_timestamp_seconds{vmid="101",type="qemu"} 1764000000')
})

/** Starts a test restore, waits until the node has started the scratch copy, and returns the child. */
async function startedRun(args: string[]): Promise<{ child: ReturnType<typeof spawn>; output: () => string; exit: Promise<number> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', scriptOf('verify:backups'), '--restore-test', '--max-age', '80', '--yes', ...args], {
    cwd: ROOT, env: labEnv({ ...ENV, HDR_REPORTS_DIR: mkdtempSync(join(tmpdir(), 'hdr-reports-')) }), stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout!.on('data', (d: Buffer) => { out += d })
  child.stderr!.on('data', (d: Buffer) => { out += d })
  const exit = new Promise<number>((res) => child.on('close', (code, sig) => res(code ?? (sig === 'SIGKILL' ? 137 : 1))))
  for (let i = 0; i < 600 && !calls().some((a) => a.join(' ') === 'qm start 9000'); i++) await new Promise((r) => setTimeout(r, 100))
  assert.ok(calls().some((a) => a.join(' ') === 'qm start 9000'), `the copy never started:\n${out}`)
  return { child, output: () => out, exit }
}

test('RT-3 killed mid-boot: the copy is left behind, cut off; the next run\'s reaper removes it, and only it', async () => {
  unbootableBackupOf101()
  // an ID of the range that is not a test restore: never touched, never used
  writeFileSync(join(QEMU, '9001.conf'), 'name: keepme\nmemory: 512\ndescription: operator test VM\n')
  const before = production()
  const run = await startedRun(['--vmid', '101', '--boot-timeout', '60'])
  // mid-boot: the copy of web01 runs with web01's address, cable pulled
  assert.match(conf(QEMU, 9000), /net0: virtio=[0-9A-F:]{17},bridge=vmbr0,firewall=1,link_down=1/)
  assert.match(conf(QEMU, 9000), /ipconfig0: ip=10\.251\.0\.101\/24/)
  assert.is(answeredBy('10.251.0.101'), macInside(101), 'the address is answered by production web01')
  assert.not.match(bridgePorts(), 'hdrv9000', 'the copy is not on the bridge')
  run.child.kill('SIGKILL')
  assert.is(await run.exit, 137)
  assert.equal(scratchGuests(), ['9000.conf', '9001.conf'], 'the killed run left its copy')

  // the node is not reset: the next run meets what the killed one left
  const again = await rtest(['--vmid', '110', '--yes'])
  assert.is(again.code, 0, again.output)
  assert.match(again.output, /✓ Destroyed VM 9000 \(web01\), left by an interrupted test restore/)
  assert.match(again.output, '! ID 9001 is in the scratch range but is not a test restore: left alone, not used')
  assert.match(again.output, /✓ CT 110 \(dns01\): restorable — vzdump-lxc-110-2026_11_25-03_00_02\.tar\.zst as 9000,/)
  assert.equal(scratchGuests(), ['9001.conf'])
  assert.is(conf(QEMU, 9001), 'name: keepme\nmemory: 512\ndescription: operator test VM\n')
  assert.equal(production(), before)
})

test('RT-4 while a booted copy runs it is cut off (its IP answered by the original only); SIGTERM: the run destroys it itself, exits 3', async () => {
  // web01's own check takes a while: the copy is up, booted, with web01's address, when we look
  const tfvars = join(TF, 'terraform.tfvars')
  const saved = readFileSync(tfvars, 'utf8')
  writeFileSync(tfvars, saved.replace('"101" = { commands = ["true"] }', '"101" = { commands = ["sleep 30"] }'))
  let run
  try {
    run = await startedRun(['--vmid', '101'])
    for (let i = 0; i < 300 && !calls().some((a) => a.join(' ') === 'qm guest cmd 9000 get-osinfo'); i++) await new Promise((r) => setTimeout(r, 100))
    assert.ok(calls().some((a) => a.join(' ') === 'qm guest cmd 9000 get-osinfo'), run.output())
  } finally {
    writeFileSync(tfvars, saved)
  }
  assert.match(conf(QEMU, 9000), /ipconfig0: ip=10\.251\.0\.101\/24/)
  const prod = macInside(101)
  assert.ok(prod && macInside(9000) && macInside(9000) !== prod, 'the copy runs, with its own NIC')
  assert.is(answeredBy('10.251.0.101'), prod, 'the address is answered by production web01 only')
  assert.not.match(bridgePorts(), 'hdrv9000', 'the copy is not on the bridge')
  run.child.kill('SIGTERM')
  const code = await run.exit
  assert.is(code, 3, run.output())
  assert.match(run.output(), '✗ Aborted! Scratch VM 9000 destroyed.')
  assert.equal(scratchGuests(), [])
})

test('RT-5 not enough space on the scratch storage: refused like restore:vm, nothing created (exit 4)', async () => {
  node.setStorage(LAB_DIR, 'local-lvm', { avail: 1024 * 1024 })
  const r = await rtest(['--vmid', '101', '--yes'])
  assert.is(r.code, 4, r.output)
  assert.match(r.output, "✗ Test restore of VM 101 (web01): not tried: Not enough space on storage 'local-lvm': need 8.0 MiB, 1.0 MiB free. Nothing was changed.")
  assert.equal(scratchGuests(), [])
  assert.not.ok(calls().some((a) => a[0] === 'qmrestore'))
})

test('RT-6 --dry-run: the plan with real facts, nothing created; no terminal and no --yes refuses', async () => {
  const dry = await rtest(['--vmid', '101,110', '--dry-run'])
  assert.is(dry.code, 0, dry.output)
  assert.match(dry.output, /Test restores on node 'pve': scratch IDs 9000-9099, memory cap \d+ MiB, one at a time/)
  assert.match(dry.output, `[dry-run] Restore VM 9000 from ${LATEST_101}: qmrestore local:backup/${LATEST_101} 9000 --unique 1`)
  assert.match(dry.output, /\[dry-run\] Make VM 9000 harmless: qm set 9000 --net0 virtio=BC:24:11:00:01:01,bridge=vmbr0,firewall=1,link_down=1 --onboot 0/)
  assert.match(dry.output, '[dry-run] 2 test restores planned, none run')
  assert.equal(scratchGuests(), [])
  const no = await rtest(['--vmid', '101'])
  assert.is(no.code, 3, no.output)
  assert.match(no.output, 'Refusing to continue without confirmation: there is no terminal to ask on.')
  assert.equal(scratchGuests(), [])
})

test('RT-7 bad flags are refused before any I/O (exit 2)', async () => {
  for (const [args, text] of [
    [['--scratch-range', '50-60'], 'Invalid --scratch-range "50-60": FIRST-LAST, two VMIDs (100 to 999999999), e.g. 9000-9099.'],
    [['--vmid', '9005', '--scratch-range', '9000-9099'], '--vmid names an ID inside the scratch range 9000-9099'],
    [['--parallel', '0'], 'Invalid --parallel "0": a whole number, at least 1.'],
  ] as const) {
    const r = await rtest([...args])
    assert.is(r.code, 2, r.output)
    assert.match(r.output, text)
  }
  const r = await runTask('verify:backups', ['--memory-cap', '512'], { env: ENV })
  assert.is(r.code, 2)
  assert.match(r.output, '--memory-cap goes with --restore-test.')
})

test.run()
