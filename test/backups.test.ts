// lib/backups.ts on real names and listings (the lab node's answers, which follow pve-storage).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { parseBackupName, parseVmid, parseDateWanted, pickBackup, sortBackups, humanSize, backupLocalTime, VZDUMP_NAME, type Backup } from '../lib/backups.ts'
import { DrError } from '../lib/errors.ts'

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

test.run()
