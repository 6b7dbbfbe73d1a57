// lib/backups.ts on real names and listings (the lab node's answers, which follow pve-storage).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { archiveInfo, listingVmid, parseBackupName, parseVmid, parseDateWanted, pickBackup, sortBackups, humanSize, backupLocalTime, VZDUMP_NAME, type Backup } from '../lib/backups.ts'
import { DrError } from '../lib/errors.ts'
import { Pve } from '../lib/pve.ts'
import type { Ssh } from '../lib/ssh.ts'

// `pvesh get /nodes/pve/storage/local/content --content backup --vmid 101 --output-format json`, as the lab answers
const LISTING = [
  { volid: 'local:backup/vzdump-qemu-101-2026_11_25-03_00_02.vma.zst', format: 'vma.zst', size: 1238, ctime: 1795575602, vmid: 101, notes: 'web01', protected: false },
  { volid: 'local:backup/vzdump-qemu-101-2026_11_23-03_00_02.vma.gz', format: 'vma.gz', size: 6296, ctime: 1795402802, vmid: 101, notes: undefined, protected: false },
  { volid: 'local:backup/vzdump-qemu-101-2026_11_20-03_00_02.vma.lzo', format: 'vma.lzo', size: 11433, ctime: 1795143602, vmid: 101, notes: undefined, protected: true },
]
const backups: Backup[] = LISTING.map((o) => {
  const file = o.volid.split('/')[1]!
  return { ...o, storage: 'local', file, type: 'qemu', compression: parseBackupName(file)!.compression }
})
const shuffled = [backups[1]!, backups[2]!, backups[0]!] // the content API's order is not stable

const usage = (fn: () => unknown, text: RegExp) => {
  try { fn() } catch (e) { assert.instance(e, DrError); assert.is((e as DrError).kind, 'usage'); assert.match((e as Error).message, text); return }
  assert.unreachable('no error')
}

test('parseBackupName: every vzdump archive form, with its log name', () => {
  assert.equal(parseBackupName('vzdump-qemu-101-2026_11_25-03_00_02.vma.zst'), {
    type: 'qemu', vmid: 101, localTime: '2026-11-25T03:00:02', format: 'vma.zst', compression: 'zst', logName: 'vzdump-qemu-101-2026_11_25-03_00_02.log',
  })
  assert.is(parseBackupName('vzdump-lxc-110-2026_11_23-03_00_02.tar.zst')?.type, 'lxc')
  assert.is(parseBackupName('vzdump-lxc-110-2026_11_23-03_00_02.tgz')?.compression, 'gz')
  assert.is(parseBackupName('vzdump-qemu-999999999-2026_01_01-00_00_00.vma')?.compression, undefined)
  assert.is(parseBackupName('vzdump-qemu-101-2026_11_25-03_00_02.log'), undefined)
  assert.is(parseBackupName('vzdump-qemu-99-2026_11_25-03_00_02.vma'), undefined)
  assert.is(parseBackupName('vzdump-qemu-101-2026_11_25-03_00_02.vma.zst.notes'), undefined)
  assert.ok(VZDUMP_NAME.test('vzdump-openvz-100-2010_01_01-00_00_00.tar'))
})

test('parseVmid: 100–999999999 only, one sentence otherwise', () => {
  assert.is(parseVmid('101'), 101)
  assert.is(parseVmid('999999999'), 999999999)
  usage(() => parseVmid('99'), /^Invalid VMID "99": expected a number from 100 to 999999999\.$/)
  usage(() => parseVmid('1000000000'), /Invalid VMID "1000000000"/)
  usage(() => parseVmid('0101'), /Invalid VMID "0101"/)
  usage(() => parseVmid('101; touch /tmp/x'), /Invalid VMID/)
  usage(() => parseVmid(undefined), /Invalid VMID ""/)
  usage(() => parseVmid('5', '--target-id'), /^Invalid --target-id "5"/)
})

test('parseDateWanted: a real day or minute, never 2026-13-01', () => {
  assert.equal(parseDateWanted('2026-11-23'), { kind: 'day', day: '2026-11-23' })
  assert.equal(parseDateWanted('2026-11-23T03:00'), { kind: 'minute', minute: '2026-11-23T03:00' })
  usage(() => parseDateWanted('2026-13-01'), /^Invalid --date "2026-13-01": expected YYYY-MM-DD or YYYY-MM-DDTHH:MM \(the node's local time\)\.$/)
  usage(() => parseDateWanted('2026-02-30'), /Invalid --date/)
  usage(() => parseDateWanted('2026-11-23T24:00'), /Invalid --date/)
  usage(() => parseDateWanted('yesterday'), /Invalid --date/)
})

test('sortBackups and pickBackup: the latest whatever the listing order (US1.2)', () => {
  assert.equal(sortBackups(shuffled).map((b) => b.file.slice(16, 26)), ['2026_11_25', '2026_11_23', '2026_11_20'])
  assert.is(pickBackup(shuffled, undefined).file, 'vzdump-qemu-101-2026_11_25-03_00_02.vma.zst')
})

test('pickBackup: a day or a minute in node time (US1.3)', () => {
  assert.is(pickBackup(shuffled, parseDateWanted('2026-11-23')).format, 'vma.gz')
  assert.is(pickBackup(shuffled, parseDateWanted('2026-11-20T03:00')).format, 'vma.lzo')
  assert.is(backupLocalTime(backups[0]!), '2026-11-25T03:00:02')
})

test('pickBackup: no match names the nearest dates', () => {
  try {
    pickBackup(shuffled, parseDateWanted('2026-11-22'))
    assert.unreachable()
  } catch (e) {
    assert.instance(e, DrError)
    assert.is((e as DrError).kind, 'prerequisites')
    assert.is((e as Error).message, 'No backup of VM 101 from 2026-11-22. Nearest backups: 2026-11-23 03:00:02, 2026-11-20 03:00:02, 2026-11-25 03:00:02.')
  }
  const ct = backups.map((b) => ({ ...b, type: 'lxc' as const, vmid: 110 }))
  assert.throws(() => pickBackup(ct, parseDateWanted('2020-01-01')), /^No backup of CT 110 from 2020-01-01\./)
})

test('humanSize', () => {
  assert.is(humanSize(0), '0 B')
  assert.is(humanSize(1238), '1.2 KiB')
  assert.is(humanSize(8 * 1048576), '8.0 MiB')
  assert.is(humanSize(150 * 1024 ** 3), '150.0 GiB')
})

// ---- names as Proxmox reads them (pve-storage Storage.pm archive_info, Plugin.pm $get_subdir_files) ----

test('archiveInfo: non-standard names are backups of their type; compression from the extension; VMID as the listing finds it', () => {
  assert.equal(archiveInfo('vzdump-qemu-16110-anything.tgz'), { type: 'qemu', format: 'tgz', compression: 'gz', standard: false, vmid: 16110, localTime: undefined })
  assert.equal(archiveInfo('vzdump-lxc-110-copy-before-upgrade.tar.zst'), { type: 'lxc', format: 'tar.zst', compression: 'zst', standard: false, vmid: 110, localTime: undefined })
  assert.equal(archiveInfo('vzdump-openvz-101-2010_01_01-00_00_00.tar.gz'), { type: 'openvz', format: 'tar.gz', compression: 'gz', standard: true, vmid: 101, localTime: '2010-01-01T00:00:00' })
  assert.equal(archiveInfo('vzdump-qemu-101-2026_11_25-03_00_02.vma'), { type: 'qemu', format: 'vma', compression: undefined, standard: true, vmid: 101, localTime: '2026-11-25T03:00:02' })
  assert.is(archiveInfo('vzdump-qemu-manual.vma.bz2')?.vmid, undefined)
  assert.is(archiveInfo('web-101-before.vma.zst'), undefined) // listed by Proxmox, but archive_info dies: not restorable
  assert.is(archiveInfo('vzdump-qemu-101-2026_11_25-03_00_02.log'), undefined)
  assert.is(archiveInfo('vzdump-qemu-101.vma.xz'), undefined)
  assert.is(listingVmid('vzdump-qemu-16110-anything.tgz'), 16110)
  assert.is(listingVmid('vzdump-qemu-99-x.vma'), undefined)
})

/** An Ssh answering the content listing and /etc/timezone as a node in New York would. */
function node(listing: unknown[], timezone = 'America/New_York\n'): Ssh & { sent: string[] } {
  const sent: string[] = []
  return {
    sent,
    async run(argv: readonly string[]) {
      sent.push(argv.join(' '))
      const stdout = argv[0] === 'cat' && argv[1] === '/etc/timezone' ? timezone : argv[0] === 'pvesh' ? JSON.stringify(listing) : ''
      return { exitCode: stdout ? 0 : 1, stdout, stderr: stdout ? '' : 'cat: /etc/timezone: No such file or directory', timedOut: false, ms: 1 }
    },
  } as unknown as Ssh & { sent: string[] }
}

// As pve-storage lists a dir storage: ctime from the name when standard, else the file's ctime (1795575602 =
// 2026-11-25T03:00:02Z); subtype from archive_info ('unknown' when it cannot read the name).
const ODD = [
  { volid: 'local:backup/vzdump-qemu-16110-anything.tgz', format: 'tgz', size: 2048, ctime: 1795575602, content: 'backup', subtype: 'qemu', vmid: 16110 },
  { volid: 'local:backup/vzdump-openvz-16110-2010_01_01-00_00_00.tar.gz', format: 'tar.gz', size: 4096, ctime: 1262322000, content: 'backup', subtype: 'openvz', vmid: 16110 },
  { volid: 'local:backup/manual-16110-copy.vma.zst', format: 'vma.zst', size: 10, ctime: 1795575602, content: 'backup', subtype: 'unknown', vmid: 16110 },
]

test('Pve.backups: non-standard names listed and flagged, openvz as a container, time in the NODE\'s timezone', async () => {
  const tz = process.env.TZ
  process.env.TZ = 'Asia/Tokyo' // the operator's own zone must not matter
  try {
    const ssh = node(ODD)
    const list = await new Pve(ssh, 'pve').backups('local', 16110)
    assert.equal(list.map((b) => [b.file, b.type, b.compression, b.nonStandardName ?? false, backupLocalTime(b)]), [
      ['vzdump-qemu-16110-anything.tgz', 'qemu', 'gz', true, '2026-11-24T22:00:02'], // 03:00:02Z is 22:00:02 the day before in New York
      ['vzdump-openvz-16110-2010_01_01-00_00_00.tar.gz', 'lxc', 'gz', false, '2010-01-01T00:00:00'],
    ])
    assert.equal(ssh.sent.filter((c) => c.startsWith('cat')), ['cat /etc/timezone']) // read once
  } finally {
    if (tz === undefined) delete process.env.TZ
    else process.env.TZ = tz
  }
})

test('Pve.backups: a node without /etc/timezone counts in UTC, as Proxmox does; never the operator\'s zone', async () => {
  const list = await new Pve(node(ODD, ''), 'pve').backups('local', 16110)
  assert.is(backupLocalTime(list[0]!), '2026-11-25T03:00:02')
  const picked = pickBackup(list, parseDateWanted('2026-11-25T03:00'))
  assert.is(picked.file, 'vzdump-qemu-16110-anything.tgz')
})

test.run()
