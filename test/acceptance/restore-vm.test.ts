// restore:vm against the lab (US1, EF-001..007, EC-1..4): the simulated node's call log, its guest
// configs and disk images under the lab folder, and the restored guest's own address (ping + SSH).
import { test as uvuTest } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn, spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { runTask, scriptOf, type RunOpts, type RunOutput } from '../helpers.ts'
import { FIXTURE, LAB_DIR, labEnv, labUp } from '../lab/lab.ts'
import * as node from '../lab/node.ts'
import { commandLine } from '../../lib/ssh.ts'

const PVE = join(LAB_DIR, 'pve')
const DUMP = join(PVE, 'var/lib/vz/dump')
const conf = (type: 'qemu' | 'lxc', id: number) => join(PVE, 'etc/pve/nodes/pve', type === 'qemu' ? 'qemu-server' : 'lxc', `${id}.conf`)
const read = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : '(missing)')
const disk = (name: string) => readFileSync(join(PVE, 'images', `${name}.raw`)).subarray(0, 64).toString('latin1').split('\n')[0]
const LATEST = 'vzdump-qemu-101-2026_11_25-03_00_02.vma.zst'
const OLDER = 'vzdump-qemu-101-2026_11_23-03_00_02.vma.gz'
const CT_LATEST = 'vzdump-lxc-110-2026_11_25-03_00_02.tar.zst'

/** A copy of the fixture homelab with the lab node's real SSH user. */
function homelab(edit: (tfvars: string) => string = (t) => t): string {
  const dir = mkdtempSync(join(tmpdir(), 'hdr-restore-tf-'))
  cpSync(FIXTURE, dir, { recursive: true, filter: (p) => !p.includes('.terraform') && !/\.tfstate/.test(p) })
  const f = join(dir, 'terraform.tfvars')
  writeFileSync(f, edit(readFileSync(f, 'utf8').replace(/user = "[^"]*"/, `user = "${node.NODE_USER}"`)))
  return dir
}
const TF = homelab()
const restore = (args: string[], opts: RunOpts = {}) =>
  runTask('restore:vm', args, { timeoutMs: 90_000, ...opts, env: { HOMELAB_TF_DIR: TF, HDR_BOOT_TIMEOUT: '15', ...opts.env } })

/** Commands the node ran since the last reset, as lines. */
const calls = () => node.calls(LAB_DIR).map((c) => c.argv.join(' '))
const WRITES = /^(vzdump|qmrestore|pct restore|qm (start|stop|shutdown|destroy)|pct (start|stop|shutdown|destroy))\b/
const writes = () => calls().filter((c) => WRITES.test(c))
/** Runs a command on the node as the lab's operator would (for test set-up only). */
const onNode = (...argv: string[]) => {
  const r = spawnSync('ssh', [...node.sshArgs(LAB_DIR), 'pve', commandLine(argv)], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`)
  return r.stdout
}
const pings = (ip: string) => spawnSync('ping', ['-c', '1', '-W', '1', ip]).status === 0
const sshHostname = (ip: string) => spawnSync('ssh', [...node.sshArgs(LAB_DIR), '-o', 'ConnectTimeout=3', `root@${ip}`, 'hostname'], { encoding: 'utf8' }).stdout.trim()
const reset = async () => {
  await node.reset(LAB_DIR)
  rmSync(join(PVE, 'calls.log'), { force: true })
}
const stopped = async (...ids: string[]) => {
  for (const id of ids) onNode(id === '110' ? 'pct' : 'qm', 'stop', id)
  rmSync(join(PVE, 'calls.log'), { force: true })
}
const dumpFiles = () => readdirSync(DUMP).sort()
const safetyFile = (before: string[]) => dumpFiles().filter((f) => !before.includes(f) && /\.(vma|tar)\.zst$/.test(f))

/** HDR_ONLY=EC-3 runs only the tests whose name contains it (debugging one criterion). */
const test = (name: string, fn: () => Promise<void>) => {
  if (!process.env.HDR_ONLY || name.includes(process.env.HDR_ONLY)) uvuTest(name, fn)
}

uvuTest.before(async () => {
  await labUp(['node'])
})

// ---- US1 ----

test('US1.1 stopped VM, latest backup: restored after the prompt, started, ping + SSH confirm', async () => {
  await reset()
  await stopped('101')
  assert.not.ok(pings('10.251.0.101'))
  const r = await restore(['101'], { tty: true, answers: [['[y/N]', 'y\n']] })
  assert.is(r.code, 0, r.output)
  assert.match(r.output, 'Overwrite VM 101 (web01) with the backup of 2026-11-25 03:00:02? [y/N]')
  assert.match(r.output, '✓ VM 101 status running')
  assert.match(r.output, '✓ Guest agent answers')
  assert.match(r.output, '✓ 10.251.0.101 answers ping')
  assert.match(r.output, '✓ SSH login to root@10.251.0.101: hostname web01')
  assert.match(r.output, `✓ VM 101 (web01) restored from ${LATEST}, running and reachable (ping + SSH).`)
  assert.equal(writes().map((c) => c.split(' --notes-template')[0]), [
    'vzdump 101 --storage local --mode snapshot --compress zstd',
    `qmrestore local:backup/${LATEST} 101 --force 1 --start 1`, // qmrestore starts it: no qm start
  ])
  assert.is(disk('vm-101-disk-0'), 'HDR-LAB disk web01 scsi0 2026-11-25')
  assert.ok(pings('10.251.0.101'))
  assert.is(sshHostname('10.251.0.101'), 'web01')
})

test('US1.1 the VM restored but its start fails (qmrestore --start 1 only warns): status check fails quoting it, exit 5, no second start', async () => {
  await reset()
  await stopped('101')
  node.setFault(LAB_DIR, { start: 'start failed: QEMU exited with code 1' })
  const r = await restore(['101', '--yes'])
  assert.is(r.code, 5, r.output)
  assert.match(r.output, `✓ Restore VM 101 from ${LATEST} and start it`)
  assert.match(r.output, '✗ VM 101 status running: VM 101 is stopped, not running. The start after the restore said: start failed: QEMU exited with code 1')
  assert.not.match(r.output, 'answers ping')
  assert.equal(writes().map((c) => c.split(' --notes-template')[0]), [
    'vzdump 101 --storage local --mode snapshot --compress zstd',
    `qmrestore local:backup/${LATEST} 101 --force 1 --start 1`,
  ])
  assert.is(disk('vm-101-disk-0'), 'HDR-LAB disk web01 scsi0 2026-11-25') // the data is restored
})

test('US1.2 several backups, no date: the most recent is used', async () => {
  await reset()
  const r = await restore(['101', '--dry-run'])
  assert.is(r.code, 0, r.output)
  assert.match(r.stdout, '✓ Backups of 101 found: 3 on \'local\', newest 2026-11-25 03:00:02')
  assert.match(r.stdout, `✓ Backup chosen: ${LATEST}`)
  assert.match(r.stdout, `  Backup:          local:backup/${LATEST}\n`)
  assert.ok(calls().some((c) => c.startsWith(`pvesm path local:backup/${LATEST}`)))
  assert.ok(calls().includes('vma verify -')) // the probe read it; its configuration came from the header
  assert.equal(writes(), [])

  const list = await restore(['101', '--list'])
  assert.is(list.code, 0)
  assert.match(list.stdout, "Backups of VM 101 on storage 'local' (node 'pve'), newest first:\n  DATE (node time)     SIZE      COMP  PROTECTED  NOTES  VOLID\n  2026-11-25 03:00:02 ")
  assert.match(list.stdout, /  2026-11-20 03:00:02  [\d.]+ KiB  lzo   protected         local:backup\/vzdump-qemu-101-2026_11_20-03_00_02\.vma\.lzo\n/)
})

test('US1.3 a date given: that day\'s backup is restored; a date without backup lists the nearest', async () => {
  await reset()
  const r = await restore(['101', '--date', '2026-11-23', '--yes', '--no-start'])
  assert.is(r.code, 0, r.output)
  assert.ok(writes().includes(`qmrestore local:backup/${OLDER} 101 --force 1`), writes().join('\n'))
  assert.is(disk('vm-101-disk-0'), 'HDR-LAB disk web01 scsi0 2026-11-23')
  assert.match(r.stdout, `✓ VM 101 (web01) restored from ${OLDER}, left stopped (--no-start was given).`)

  await reset()
  const none = await restore(['101', '--date', '2026-11-22', '--yes'])
  assert.is(none.code, 4)
  assert.match(none.stdout, '✗ No backup of VM 101 from 2026-11-22. Nearest backups: 2026-11-23 03:00:02, 2026-11-20 03:00:02, 2026-11-25 03:00:02.\n  Pass one of those with --date, or use --list to see them all.')
  assert.equal(writes(), [])
})

test('US1.4 no backup: clear error, nothing changed', async () => {
  await reset()
  const before = read(conf('qemu', 102))
  const r = await restore(['102', '--yes'])
  assert.is(r.code, 4)
  assert.match(r.stdout, "✗ No backup of 102 on storage 'local' (node 'pve'): nothing to restore. Nothing was changed.\n  Check the vzdump jobs (pvesh get /cluster/backup on the node) or name a backup on another storage with --backup.")
  assert.equal(writes(), [])
  assert.is(read(conf('qemu', 102)), before)
})

test('US1.5 an existing VM: the overwrite is asked first; no, or no terminal, changes nothing', async () => {
  await reset()
  await stopped('101')
  const before = read(conf('qemu', 101))
  const no = await restore(['101'], { tty: true, answers: [['[y/N]', 'n\n']] })
  assert.is(no.code, 3)
  assert.match(no.output, 'Overwrite VM 101 (web01) with the backup of 2026-11-25 03:00:02? [y/N]')
  assert.match(no.output, '✗ Aborted: overwriting VM 101 (web01) was not confirmed. Nothing was changed.')
  const piped = await restore(['101'])
  assert.is(piped.code, 3)
  assert.match(piped.stdout, '✗ Refusing to continue without confirmation: there is no terminal to ask on.\n  Read the plan above, then re-run with --yes to confirm it.')
  assert.equal(writes(), [])
  assert.is(read(conf('qemu', 101)), before)
  assert.is(disk('vm-101-disk-0'), 'HDR-LAB disk web01 scsi0 current')
})

test('US1.6 a CTID: detected as a container from its backup, restored with pct, reachable; types never cross', async () => {
  await reset()
  const r = await restore(['110', '--yes'])
  assert.is(r.code, 0, r.output)
  assert.match(r.stdout, '  Guest in backup: CT 110 (dns01), lxc')
  assert.equal(writes().map((c) => c.split(' --notes-template')[0]), [
    'vzdump 110 --storage local --mode snapshot --compress zstd',
    'pct stop 110',
    `pct restore 110 local:backup/${CT_LATEST} --force 1 --storage local-lvm`,
    'pct start 110',
  ])
  assert.is(readFileSync(join(PVE, 'images/vm-110-disk-0/root/marker'), 'utf8'), 'dns01 2026-11-25\n')
  assert.match(r.stdout, `✓ CT 110 (dns01) restored from ${CT_LATEST}, running and reachable (ping + SSH).`)
  assert.is(sshHostname('10.251.0.110'), 'dns01')

  await reset()
  const cross = await restore(['110', '--target-id', '101', '--yes'])
  assert.is(cross.code, 4)
  assert.match(cross.stdout, '✗ The backup is of a container, but ID 101 holds VM 101 (web01): Proxmox cannot overwrite a guest of another type.')
  assert.equal(writes(), [])
})

test('US1.7 --target-id: restored under the new ID with new MACs, the original untouched', async () => {
  await reset()
  await stopped('101')
  const before = read(conf('qemu', 101))
  const r = await restore(['101', '--target-id', '150', '--yes'])
  assert.is(r.code, 0, r.output)
  assert.equal(writes(), [`qmrestore local:backup/${LATEST} 150 --unique 1 --start 1`])
  assert.is(read(conf('qemu', 101)), before)
  assert.is(disk('vm-101-disk-0'), 'HDR-LAB disk web01 scsi0 current')
  const copy = read(conf('qemu', 150))
  assert.match(copy, 'name: web01')
  assert.not.match(copy, 'BC:24:11:00:01:01')
  assert.match(r.stdout, `✓ VM 150 (web01) restored from ${LATEST}, running and reachable (ping + SSH).`)
})

test('US1.7 --target-id while the original runs with the same static IP: restored, not started, and why', async () => {
  await reset()
  const r = await restore(['101', '--target-id', '150', '--yes'])
  assert.is(r.code, 0, r.output)
  assert.match(r.stdout, '  Then:            leave it stopped: its address 10.251.0.101 is in use by VM 101 (web01), which is running')
  assert.equal(writes(), [`qmrestore local:backup/${LATEST} 150 --unique 1`])
  assert.match(r.stdout, `✓ VM 150 (web01) restored from ${LATEST}, left stopped (its address 10.251.0.101 is in use by VM 101 (web01), which is running).`)
  assert.match(onNode('qm', 'status', '101'), 'status: running')
  assert.is(sshHostname('10.251.0.101'), 'web01')
})

test('US1.1 verification fails: exit 5, what failed, and how to roll back to the safety backup', async () => {
  await reset()
  // the newest backup holds an address no guest can answer on (off the lab bridge)
  writeFileSync(conf('qemu', 101), read(conf('qemu', 101)).replace('ip=10.251.0.101/24', 'ip=10.251.9.101/24'))
  onNode('vzdump', '101', '--storage', 'local', '--mode', 'snapshot', '--compress', 'zstd')
  rmSync(join(PVE, 'calls.log'), { force: true })
  const before = dumpFiles()
  const r = await restore(['101', '--yes'], { env: { HDR_BOOT_TIMEOUT: '2', HDR_SSH_CONNECT_TIMEOUT: '2' } })
  assert.is(r.code, 5, r.output)
  const safety = safetyFile(before)[0]
  assert.ok(safety, 'a safety backup was written')
  assert.match(r.stdout, /✗ 10\.251\.9\.101 answers ping \([\d.]+s\): 10\.251\.9\.101 does not answer ping \(\d+ attempts over 2 s\)\./)
  assert.match(r.stdout, /✗ VM 101 \(web01\) was restored from vzdump-qemu-101-\S+, but its verification failed: 10\.251\.9\.101 does not answer ping/)
  assert.match(r.stdout, `  To put it back: npm run restore:vm -- 101 --backup local:backup/${safety}\n    (on the node: qm stop 101 && qmrestore local:backup/${safety} 101 --force 1)`)
})

// ---- edge cases ----

test('EC-1 node unreachable over SSH: clear error, check the network, exit 4', async () => {
  const tf = homelab((t) => t.replace('port = 2222', 'port = 2299'))
  const r = await restore(['101', '--yes'], { env: { HOMELAB_TF_DIR: tf } })
  assert.is(r.code, 4)
  assert.match(r.stdout, "✗ Cannot reach Proxmox node 'pve' over SSH (root@127.0.0.2:2299): ssh: connect to host 127.0.0.2 port 2299: Connection refused.\n  Check the network connection to the node (ping 127.0.0.2), that sshd runs there, and that your key is loaded: ssh -p 2299 root@127.0.0.2 hostname")
})

test('EC-2 not enough space on the target storage: warned before starting, refused without --force', async () => {
  await reset()
  node.setStorage(LAB_DIR, 'local-lvm', { avail: 4 * 1024 * 1024 })
  const copy = await restore(['101', '--target-id', '150', '--yes', '--no-start'])
  assert.is(copy.code, 4)
  assert.match(copy.stdout, "✗ Not enough space on storage 'local-lvm': need 8.0 MiB, 4.0 MiB free. Nothing was changed.\n  Free some space, choose another storage with --storage S, or re-run with --force to try anyway.")
  assert.equal(writes(), [])
  const forced = await restore(['101', '--target-id', '150', '--force', '--no-start'])
  assert.match(forced.stdout, "  ! Not enough space on storage 'local-lvm': need 8.0 MiB, 4.0 MiB free. Going on anyway (--force).")
  assert.ok(writes().includes(`qmrestore local:backup/${LATEST} 150 --unique 1`))
})

test('EC-3 running target: stop-then-restore or the next free VMID is offered; no terminal refuses', async () => {
  await reset()
  const piped = await restore(['101'])
  assert.is(piped.code, 3)
  assert.match(piped.stdout, '  ! VM 101 (web01) is running: it will be stopped after its safety backup.')
  assert.equal(writes(), [])

  const next = await restore(['101'], { tty: true, answers: [['Choice [a]:', 'n\n']] })
  assert.is(next.code, 0, next.output)
  assert.match(next.output, 'VM 101 (web01) is running. What now?\n  a) abort: change nothing\n  s) take a safety backup of 101, stop it, and restore over it\n  n) restore to the next free ID, 100, and leave 101 running')
  assert.match(next.output, 'Restoring to VM 100 instead; VM 101 (web01) stays as it is.')
  assert.equal(writes(), [`qmrestore local:backup/${LATEST} 100 --unique 1`])
  assert.match(onNode('qm', 'status', '101'), 'status: running')

  await reset()
  const stop = await restore(['101'], { tty: true, answers: [['Choice [a]:', 's\n']] })
  assert.is(stop.code, 0, stop.output)
  assert.equal(writes().map((c) => c.split(' --notes-template')[0]), ['vzdump 101 --storage local --mode snapshot --compress zstd', 'qm stop 101', `qmrestore local:backup/${LATEST} 101 --force 1 --start 1`])
})

test('EC-4 corrupted latest backup: named, the next older suggested and offered, nothing changed', async () => {
  await reset()
  await stopped('101')
  truncateSync(join(DUMP, LATEST), Math.floor(statSync(join(DUMP, LATEST)).size / 2))
  const r = await restore(['101', '--yes'])
  assert.is(r.code, 4)
  assert.match(r.stdout, `✗ Backup ${LATEST} failed its integrity check:`)
  assert.match(r.stdout, `  Use the next older backup (2026-11-23 03:00:02): npm run restore:vm -- 101 --backup local:backup/${OLDER}`)
  assert.equal(writes(), [])

  const offered = await restore(['101'], { tty: true, answers: [['instead? [y/N]', 'y\n'], ['Overwrite', 'y\n']] })
  assert.is(offered.code, 0, offered.output)
  assert.match(offered.output, `Use the next older backup, ${OLDER} (2026-11-23 03:00:02), instead? [y/N]`)
  assert.ok(writes().includes(`qmrestore local:backup/${OLDER} 101 --force 1 --start 1`))
  assert.is(disk('vm-101-disk-0'), 'HDR-LAB disk web01 scsi0 2026-11-23')
})

test('EC-4 a VMA whose header holds no qemu-server.conf: refused before anything changes (the configuration comes from the header the probe reads)', async () => {
  await reset()
  // the header made whole again (MD5) with its config table emptied: vma verify passes it, qmrestore could not
  const file = join(DUMP, LATEST)
  const vma = Buffer.from(spawnSync('zstd', ['-q', '-d', '-c', file], { maxBuffer: 1 << 28 }).stdout)
  vma.fill(0, 2044, 4092).fill(0, 32, 48)
  createHash('md5').update(vma.subarray(0, vma.readUInt32BE(56))).digest().copy(vma, 32)
  writeFileSync(file, spawnSync('zstd', ['-q', '-c'], { input: vma, maxBuffer: 1 << 28 }).stdout)
  const r = await restore(['101', '--yes'])
  assert.is(r.code, 4, r.output)
  assert.ok(r.stdout.includes(`✗ Backup ${LATEST} failed its integrity check: its configuration cannot be read (no qemu-server.conf in the archive's header).`), r.output)
  assert.equal(writes(), [])
})

// ---- functional requirements ----

test('EF-001 preflight: every check shown; inactive storage, lock and protection refuse with nothing changed', async () => {
  await reset()
  const ok = await restore(['101', '--dry-run'])
  for (const line of [
    "✓ Node 'pve' reachable over SSH (root@127.0.0.2:2222)",
    "✓ Backup storage 'local' active",
    "✓ Backups of 101 found: 3 on 'local', newest 2026-11-25 03:00:02",
    `✓ Archive ${LATEST} intact: `,
    "✓ Free space for the disks: 'local-lvm': need 8.0 MiB, 150.0 GiB free + 8.0 MiB from the disks it replaces",
  ]) assert.match(ok.stdout, line)

  node.setStorage(LAB_DIR, 'local', { active: 0 })
  const off = await restore(['101', '--yes'])
  assert.is(off.code, 4)
  assert.match(off.stdout, "✗ Backup storage 'local' is not active on node 'pve': its backups cannot be read. Nothing was changed.")

  await reset()
  writeFileSync(conf('qemu', 101), read(conf('qemu', 101)) + 'lock: backup\n')
  const locked = await restore(['101', '--yes'])
  assert.is(locked.code, 4)
  assert.match(locked.stdout, '✗ VM 101 (web01) is locked (backup): a backup may be in progress. Nothing was changed.')

  await reset()
  writeFileSync(conf('qemu', 101), read(conf('qemu', 101)) + 'protection: 1\n')
  const prot = await restore(['101', '--yes'])
  assert.is(prot.code, 4)
  assert.match(prot.stdout, '✗ VM 101 (web01) is protected (protection: 1): Proxmox refuses to overwrite it. Nothing was changed.')
  assert.equal(writes(), [])
})

test('EF-002 the plan: backup, target and its state, every action in order, before the prompt', async () => {
  await reset()
  const r = await restore(['101'])
  const plan = r.stdout.slice(r.stdout.indexOf('Restore VM 101 on node'), r.stdout.indexOf('✗ Refusing'))
  assert.is(plan, [
    "Restore VM 101 on node 'pve' from the backup of 2026-11-25 03:00:02",
    '  Node:            pve (root@127.0.0.2:2222)',
    `  Backup:          local:backup/${LATEST}`,
    `  Taken:           2026-11-25 03:00:02 (node time), ${(statSync(join(DUMP, LATEST)).size / 1024).toFixed(1)} KiB, notes: web01`,
    '  Guest in backup: VM 101 (web01), qemu',
    '  Target:          VM 101 (web01), running — will be overwritten',
    '  Disks to:        where they were (as recorded in the backup)',
    '  Address:         10.251.0.101 (ipconfig0)',
    '  Then:            start it and check: status running, ping 10.251.0.101, ssh root@10.251.0.101, guest agent ping',
    '  ! VM 101 (web01) is running: it will be stopped after its safety backup.',
    'Actions:',
    '  1. Safety backup of VM 101 (web01)',
    `       vzdump 101 --storage local --mode snapshot --compress zstd --notes-template 'homelab-dr safety backup of {{guestname}} before restore:vm from ${LATEST}' --remove 0`,
    '  2. Stop VM 101 (web01) (now running)',
    '       qm stop 101',
    `  3. Restore VM 101 from ${LATEST} and start it`,
    `       qmrestore local:backup/${LATEST} 101 --force 1 --start 1`,
    '',
    '',
    '',
  ].join('\n'))
})

test('EF-003 the report: archive, safety backup, steps with durations, checks; file mode 0600', async () => {
  await reset()
  const reports = mkdtempSync(join(tmpdir(), 'hdr-restore-reports-'))
  const r = await restore(['110', '--yes', '--json'], { env: { HDR_REPORTS_DIR: reports } })
  assert.is(r.code, 0, r.output)
  const doc = JSON.parse(r.stdout) as { ok: boolean; facts: Record<string, unknown>; steps: { title: string; status: string; ms: number }[]; reportFile: string }
  assert.ok(doc.ok)
  assert.is(doc.facts.backup, `local:backup/${CT_LATEST}`)
  assert.match(String(doc.facts.safetyBackup), /^local:backup\/vzdump-lxc-110-\d{4}_\d\d_\d\d-\d\d_\d\d_\d\d\.tar\.zst$/)
  assert.equal(doc.facts.checks, ['status running', 'ping 10.251.0.110', 'ssh root@10.251.0.110'])
  assert.ok(doc.steps.every((s) => s.status === 'ok' && Number.isInteger(s.ms)))
  assert.ok(doc.steps.some((s) => s.title.startsWith('Restore CT 110 from')))
  assert.is(statSync(doc.reportFile).mode & 0o777, 0o600)
  assert.equal(JSON.parse(readFileSync(doc.reportFile, 'utf8')).steps, doc.steps)
})

test('EF-004 runs from the operator machine: one SSH connection to the node, at most 12 commands', async () => {
  await reset()
  await stopped('101')
  const log = join(LAB_DIR, 'node', 'sshd.log')
  const accepted = () => (read(log).match(/Accepted publickey/g) ?? []).length
  const before = accepted()
  const r = await restore(['101', '--yes', '--json'])
  assert.is(r.code, 0, r.output)
  const doc = JSON.parse(r.stdout) as { facts: { sshCommands: number } }
  assert.is(accepted() - before, 1)
  assert.ok(doc.facts.sshCommands <= 12, `ssh commands: ${doc.facts.sshCommands}`)
})

test('issue 14 a restore over the running VM 101: each node command it needs, once; each backup\'s path asked of pvesm once', async () => {
  await reset()
  const r = await restore(['101', '--yes', '--json'])
  assert.is(r.code, 0, r.output)
  const safety = (JSON.parse(r.stdout) as { facts: { safetyBackup: string } }).facts.safetyBackup
  // the guest agent is asked again while it starts: a retry, not another check
  const ran = calls().filter((c, i, all) => !(c === 'qm guest cmd 101 ping' && all[i - 1] === c)).map((c) => c.split(' --notes-template')[0])
  assert.equal(ran, [
    'pvesh get /nodes/pve/storage --output-format json',
    'pvesh get /nodes/pve/storage/local/content --content backup --vmid 101 --output-format json',
    'qm config 101',
    'qm status 101',
    `pvesm path local:backup/${LATEST}`,
    'vma verify -', // the configuration read from the VMA header in the same pass: no pvesm extractconfig
    'vzdump 101 --storage local --mode snapshot --compress zstd',
    'vma verify -',
    'qm stop 101',
    `qmrestore local:backup/${LATEST} 101 --force 1 --start 1`, // and started: no qm start (issue 14)
    'qm guest cmd 101 ping', // its answer says the VM runs: no qm status
  ])
  assert.match(r.output, /^✓ VM 101 status running\b.*its guest agent (answers|is starting)/m)
})

test('EF-005 reads the homelab\'s terraform.tfvars: node address, backup storage', async () => {
  await reset()
  const tf = homelab((t) => t.replace('backup_storage = "local"', 'backup_storage = "nas"'))
  const r = await restore(['101', '--yes'], { env: { HOMELAB_TF_DIR: tf } })
  assert.is(r.code, 4)
  assert.match(r.stdout, "✓ Node 'pve' reachable over SSH (root@127.0.0.2:2222)")
  assert.match(r.stdout, "✗ Backup storage 'nas' does not exist on node 'pve' (storages there: local, local-lvm).")
})

test('EF-006 a safety backup before overwriting; when it fails nothing is touched', async () => {
  await reset()
  await stopped('101')
  const before = dumpFiles()
  const r = await restore(['101', '--yes'])
  assert.is(r.code, 0, r.output)
  const safety = safetyFile(before)
  assert.is(safety.length, 1)
  assert.is(read(join(DUMP, `${safety[0]}.notes`)), `homelab-dr safety backup of web01 before restore:vm from ${LATEST}`)
  assert.match(r.stdout, `  Safety backup of the guest as it was: local:backup/${safety[0]}`)
  const order = writes().map((c) => c.split(' ')[0])
  assert.ok(order.indexOf('vzdump') < order.indexOf('qmrestore'))

  await reset()
  await stopped('101')
  node.setStorage(LAB_DIR, 'local', { avail: 100 })
  const fail = await restore(['101', '--force'])
  assert.is(fail.code, 1)
  assert.match(fail.stdout, '✗ The safety backup of 101 failed (ERROR: Backup of VM 101 failed - vma_queue_write: write error - No space left on device), so nothing was restored: 101 is unchanged.')
  assert.equal(writes().map((c) => c.split(' ')[0]), ['vzdump'])
  assert.is(disk('vm-101-disk-0'), 'HDR-LAB disk web01 scsi0 current')
})

test('EF-007 --dry-run: the plan and the real facts, and no change on the node', async () => {
  await reset()
  const before = read(conf('qemu', 101))
  const files = dumpFiles()
  const r = await restore(['101', '--dry-run'])
  assert.is(r.code, 0)
  assert.match(r.stdout, `[dry-run] Restore VM 101 from ${LATEST} and start it: qmrestore local:backup/${LATEST} 101 --force 1 --start 1`)
  assert.match(r.stdout, 'Dry run: nothing was changed. Run the same command without --dry-run to restore.')
  assert.equal(writes(), [])
  assert.is(read(conf('qemu', 101)), before)
  assert.equal(dumpFiles(), files)
})

// ---- issue 12: what the safety backup and a failed restore must never lose ----

/** restore:vm under a terminal; when `prompt` shows, `meanwhile()` runs (a fault injected while the operator reads), then `reply` is typed. */
function restoreAtPrompt(args: string[], prompt: string, meanwhile: () => void, reply: string): Promise<RunOutput> {
  const line = [process.execPath, '--import', 'tsx', scriptOf('restore:vm'), ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ')
  const reports = mkdtempSync(join(tmpdir(), 'hdr-reports-'))
  const child = spawn('script', ['-qefc', line, '/dev/null'], { env: labEnv({ HOMELAB_TF_DIR: TF, HDR_BOOT_TIMEOUT: '15', HDR_REPORTS_DIR: reports }), stdio: ['pipe', 'pipe', 'pipe'] })
  let out = ''
  let answered = false
  const onData = (d: Buffer) => {
    out += d
    if (!answered && out.includes(prompt)) {
      answered = true
      meanwhile()
      child.stdin.write(reply)
    }
  }
  child.stdout.on('data', onData)
  child.stderr.on('data', onData)
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000)
  return new Promise((resolve) => child.on('close', (code) => {
    clearTimeout(timer)
    rmSync(reports, { recursive: true, force: true })
    const o = out.replace(/\r\n/g, '\n')
    resolve({ code: code ?? 137, stdout: o, stderr: '', output: o })
  }))
}

/** The VMA inside a .vma.zst, cut inside its first extent: the header is whole, the data is not (restore fails past the header). */
function cutInsideFirstExtent(file: string): void {
  const vma = spawnSync('zstd', ['-q', '-d', '-c', file]).stdout
  const cut = vma.subarray(0, vma.readUInt32BE(56) + 512 + 100)
  writeFileSync(file, spawnSync('zstd', ['-q', '-c'], { input: cut }).stdout)
}

test('EF-006 the safety backup never prunes the backup being restored (vzdump --remove 0), whatever the storage keeps', async () => {
  await reset()
  await stopped('101')
  node.setStorage(LAB_DIR, 'local', { 'prune-backups': 'keep-last=1' })
  const r = await restore(['101', '--date', '2026-11-23', '--yes', '--no-start'])
  assert.is(r.code, 0, r.output)
  assert.match(calls().find((c) => c.startsWith('vzdump 101'))!, / --remove 0$/)
  assert.ok(dumpFiles().includes(OLDER) && dumpFiles().includes(LATEST), dumpFiles().join('\n'))
  assert.is(disk('vm-101-disk-0'), 'HDR-LAB disk web01 scsi0 2026-11-23')
  // the node's vzdump does prune by default, as pve-manager's does: keep-last=1 leaves the newest and the protected one
  onNode('vzdump', '101', '--storage', 'local', '--mode', 'snapshot', '--compress', 'zstd')
  assert.equal(dumpFiles().filter((f) => f.startsWith('vzdump-qemu-101-') && !/\.(log|notes|protected)$/.test(f)).length, 2)
  assert.not.ok(dumpFiles().includes(OLDER))
})

test('EF-006 the chosen backup removed while the plan is read: found before the stop, nothing restored, the guest untouched', async () => {
  await reset()
  const r = await restoreAtPrompt(['101'], 'Choice [a]:', () => rmSync(join(DUMP, LATEST)), 's\n')
  assert.is(r.code, 1, r.output)
  assert.match(r.output, `✗ Backup ${LATEST} is no longer on storage 'local' (removed since it was checked: a prune, or by hand), so nothing was restored. VM 101 (web01) is unchanged.`)
  assert.equal(writes().map((c) => c.split(' ')[0]), ['vzdump'])
  assert.match(onNode('qm', 'status', '101'), 'status: running')
  assert.is(disk('vm-101-disk-0'), 'HDR-LAB disk web01 scsi0 current')
})

test('EF-006 a restore that fails over the guest is rolled back: safety backup restored, started, proven; both reported (exit 1)', async () => {
  await reset()
  const before = dumpFiles()
  const r = await restoreAtPrompt(['101'], 'Choice [a]:', () => cutInsideFirstExtent(join(DUMP, LATEST)), 's\n')
  assert.is(r.code, 1, r.output)
  const safety = safetyFile(before)[0]
  assert.ok(safety, 'a safety backup was written')
  assert.match(r.output, `✗ The restore of VM 101 failed: `)
  assert.match(r.output, 'Rolling back to the safety backup (--no-rollback would leave it).')
  assert.match(r.output, '✓ Roll back VM 101 (web01) to its safety backup')
  assert.match(r.output, '✓ SSH login to root@10.251.0.101: hostname web01')
  assert.match(r.output, new RegExp(`Rolled back: VM 101 \\(web01\\) is as it was before, from its safety backup ${safety!.replace(/\./g, '\\.')}, running and reachable\\.`))
  assert.equal(writes().map((c) => c.split(' --notes-template')[0]).slice(-3), [`qmrestore local:backup/${LATEST} 101 --force 1 --start 1`, `qmrestore local:backup/${safety} 101 --force 1`, 'qm start 101'])
  assert.is(disk('vm-101-disk-0'), 'HDR-LAB disk web01 scsi0 current')
  assert.is(sshHostname('10.251.0.101'), 'web01')
})

test('EF-006 --no-rollback: a failed restore is left as it is, with the safety backup and how to put it back', async () => {
  await reset()
  const r = await restoreAtPrompt(['101', '--no-rollback'], 'Choice [a]:', () => cutInsideFirstExtent(join(DUMP, LATEST)), 's\n')
  assert.is(r.code, 1, r.output)
  assert.match(r.output, 'Left as it is (--no-rollback): VM 101 (web01) may have lost its disks.')
  assert.match(r.output, /To put it back: npm run restore:vm -- 101 --backup local:backup\/vzdump-qemu-101-/)
  assert.not.ok(writes().some((c) => c.includes('--force 1') && !c.includes(LATEST)), 'no rollback ran')
})

test('issue 12.17 two restores of one VMID at once: the second is refused naming the holder, nothing changed', async () => {
  await reset()
  const locks = mkdtempSync(join(tmpdir(), 'hdr-locks-'))
  try {
    // The first run holds the guest's lock: this test process stands in for it (alive, this host).
    const holder = { task: 'restore:vm', pid: process.pid, host: hostname(), started: '2026-12-02T03:00:00.000Z', command: '101 --yes' }
    writeFileSync(join(locks, 'guest-pve-101.lock'), JSON.stringify(holder) + '\n')
    const before = read(conf('qemu', 101))
    const r = await restore(['101', '--yes'], { env: { HDR_LOCK_DIR: locks } })
    assert.is(r.code, 4, r.output)
    assert.ok(r.output.includes(`✗ Another homelab-dr run is working on guest 101 on node 'pve': restore:vm (pid ${process.pid} on ${hostname()}, started 2026-12-02T03:00:00.000Z: 101 --yes). Nothing was changed.`), r.output)
    assert.equal(writes(), [])
    assert.is(read(conf('qemu', 101)), before)
    // a dry run takes no lock and still shows the plan
    const dry = await restore(['101', '--dry-run'], { env: { HDR_LOCK_DIR: locks } })
    assert.is(dry.code, 0, dry.output)
  } finally {
    rmSync(locks, { recursive: true, force: true })
  }
})

test('bad input changes nothing and says why: VMID range, --date, unknown flag, --backup of another VMID, --target-id = source', async () => {
  await reset()
  const cases: Array<[string[], string]> = [
    [['99'], '✗ Invalid VMID "99": expected a number from 100 to 999999999.'],
    [['1000000000'], '✗ Invalid VMID "1000000000": expected a number from 100 to 999999999.'],
    [['101', '--date', '2026-13-01'], '✗ Invalid --date "2026-13-01": expected YYYY-MM-DD or YYYY-MM-DDTHH:MM (the node\'s local time).'],
    [['101', '--dryrun'], '✗ Unknown option --dryrun. Did you mean --dry-run?'],
    [['101', '--backup', `local:backup/${CT_LATEST}`], `✗ --backup local:backup/${CT_LATEST} is a backup of 110, not of 101.`],
    [['101', '--target-id', '101'], '✗ --target-id 101 is the guest being restored: leave --target-id out to restore in place, or give another ID.'],
  ]
  for (const [args, message] of cases) {
    const r = await restore(args)
    assert.is(r.code, 2, args.join(' '))
    assert.is(r.stderr.split('\n')[0], message)
  }
  assert.equal(calls(), [])
})

test('Ctrl-C during the checks after the start names the state of the guest', async () => {
  await reset()
  writeFileSync(conf('qemu', 101), read(conf('qemu', 101)).replace('ip=10.251.0.101/24', 'ip=10.251.9.101/24'))
  onNode('vzdump', '101', '--storage', 'local', '--mode', 'snapshot', '--compress', 'zstd')
  const child = spawn(process.execPath, ['--import', 'tsx', scriptOf('restore:vm'), '101', '--yes'], { env: labEnv({ HOMELAB_TF_DIR: TF, HDR_BOOT_TIMEOUT: '60' }) })
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d))
  child.stderr.on('data', (d: Buffer) => (out += d))
  const code = await new Promise<number>((resolve) => {
    const timer = setInterval(() => { if (/✓ Restore VM 101 from \S+ and start it/.test(out)) { clearInterval(timer); setTimeout(() => child.kill('SIGINT'), 500) } }, 50)
    child.on('close', (c) => { clearInterval(timer); resolve(c ?? -1) })
  })
  assert.is(code, 3)
  assert.match(out, /✗ Aborted! VM 101 is restored and started; its checks were running\. Safety backup of the guest as it was: local:backup\/vzdump-qemu-101-\S+ To put it back: npm run restore:vm -- 101 --backup local:backup\/vzdump-qemu-101-/)
})

uvuTest.run()
