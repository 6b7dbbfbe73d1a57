// lib/verify.ts and lib/metrics.ts: the node-side script run by a local bash over real archives
// (VMA bytes from the simulator's writer, compressed with the real zstd/gzip/lzop), the result
// parsing, freshness, state-version checks and the Prometheus textfile.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdirSync, openSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { tempDir } from './tmp.ts'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { writeVma } from './lab/pve-sim/lib/vma.mjs'
import type { Backup } from '../lib/backups.ts'
import { renderMetrics, writeAtomic } from '../lib/metrics.ts'
import {
  NODE_SCRIPT, clock, expectedGuests, fileItem, guestItem, linkOlderGood, nodeInput, parseNodeLine, schedulePeriodHours, stateChecks, vmaMessage,
  type FileItem, type NodeLine,
} from '../lib/verify.ts'
import { CLUSTER_READER } from '../lib/vma.ts'

const SIM_BIN = join(import.meta.dirname, 'lab', 'pve-sim', 'bin')
const dir = tempDir('hdr-verify-')
const sh = (cmd: string, args: string[], input?: Buffer) => {
  const r = spawnSync(cmd, args, { input })
  if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr}`)
  return r.stdout
}
const vma = () => writeVma({ configs: [{ name: 'qemu-server.conf', data: 'name: t\n' }], devices: [{ name: 'drive-scsi0', data: Buffer.alloc(3 * 65536, 7) }], ctime: 1764000000 })
const LOG_OK = 'INFO: starting new backup job\nINFO: Finished Backup of VM 101 (00:00:02)\nINFO: Backup job finished successfully\n'

function backup(file: string, size: number): Backup {
  const m = /^vzdump-(qemu|lxc)-(\d+)-(\d{4})_(\d\d)_(\d\d)-(\d\d)_(\d\d)_(\d\d)\.(.+?)$/.exec(file)!
  const ctime = Date.UTC(+m[3]!, +m[4]! - 1, +m[5]!, +m[6]!, +m[7]!, +m[8]!) / 1000
  const comp = /\.(zst|gz|lzo|bz2)$/.exec(file)?.[1]
  return { volid: `local:backup/${file}`, storage: 'local', file, vmid: +m[2]!, type: m[1] as 'qemu' | 'lxc', format: m[9]!, compression: comp, size, ctime, notes: undefined, protected: false }
}

function put(file: string, data: Buffer, log: string | null = LOG_OK): Backup {
  writeFileSync(join(dir, file), data)
  if (log !== null) writeFileSync(join(dir, file.replace(/\.(vma|tar)(\.\w+)?$/, '.log')), log)
  return backup(file, data.length)
}

function runNodeScript(backups: Backup[], mode: 'full' | 'meta' = 'full'): Map<string, NodeLine> {
  const jobs = backups.map((b, id) => ({ id, path: join(dir, b.file), backup: b }))
  const r = spawnSync('bash', ['-c', NODE_SCRIPT, 'hdr', '0', mode], {
    input: nodeInput(jobs, () => dir),
    encoding: 'utf8',
    env: { ...process.env, PATH: `${SIM_BIN}:${process.env.PATH}`, HDR_LAB_DIR: join(dir, 'lab') },
  })
  assert.is(r.status, 0, r.stderr)
  const out = new Map<string, NodeLine>()
  for (const l of r.stdout.split('\n').filter(Boolean)) {
    const p = parseNodeLine(l)
    assert.ok(p, `unparsable line ${l}`)
    out.set(backups[p!.id]!.file, p!)
  }
  assert.is(out.size, backups.length, 'one line per file')
  return out
}

test('node script: good VMA (zst, gz, lzo) and LXC tar pass every check', () => {
  const raw = vma()
  const list = [
    put('vzdump-qemu-101-2026_11_25-03_00_02.vma.zst', sh('zstd', ['-q', '-c'], raw)),
    put('vzdump-qemu-101-2026_11_24-03_00_02.vma.gz', sh('gzip', ['-c'], raw)),
    put('vzdump-qemu-101-2026_11_23-03_00_02.vma.lzo', sh('lzop', ['-c'], raw)),
    put('vzdump-qemu-101-2026_11_22-03_00_02.vma', raw),
  ]
  const root = join(dir, 'ct'); mkdirSync(join(root, 'etc/vzdump'), { recursive: true })
  writeFileSync(join(root, 'etc/vzdump/pct.conf'), 'hostname: t\n')
  list.push(put('vzdump-lxc-110-2026_11_25-03_00_02.tar.zst', sh('tar', ['--zstd', '-cf', '-', '-C', root, '.'])))
  const res = runNodeScript(list)
  for (const b of list) {
    const item = fileItem('pve', b, res.get(b.file)!)
    assert.is(item.status, 'ok', `${b.file}: ${JSON.stringify(item.checks)}`)
  }
  assert.equal(fileItem('pve', list[0]!, res.get(list[0]!.file)!).checks.map((c) => c.name), ['size', 'compression', 'vma header', 'vma extents', 'vma clusters', 'log'])
})

test('node script: truncated, flipped header byte, missing pct.conf, empty, bad checksum, ERROR: log', () => {
  const raw = vma()
  const zst = sh('zstd', ['-q', '-c'], raw)
  const flipped = Buffer.from(raw); flipped[100] = flipped[100]! ^ 0xff // in the reserved area: only the header MD5 sees it
  const root = join(dir, 'ct2'); mkdirSync(join(root, 'etc'), { recursive: true }); writeFileSync(join(root, 'etc/hostname'), 'x\n')
  const good = put('vzdump-qemu-102-2026_11_25-03_00_02.vma.zst', zst)
  writeFileSync(join(dir, `${good.file}.sha256`), `${createHash('sha256').update(zst).digest('hex')}  ${good.file}\n`)
  const list = [
    good,
    put('vzdump-qemu-103-2026_11_25-03_00_02.vma.zst', zst.subarray(0, Math.floor(zst.length / 2))),
    put('vzdump-qemu-104-2026_11_25-03_00_02.vma.zst', sh('zstd', ['-q', '-c'], flipped)),
    put('vzdump-lxc-111-2026_11_25-03_00_02.tar.gz', sh('tar', ['-czf', '-', '-C', root, '.'])),
    put('vzdump-qemu-105-2026_11_25-03_00_02.vma.zst', Buffer.alloc(0)),
    put('vzdump-qemu-106-2026_11_25-03_00_02.vma.zst', zst),
    put('vzdump-qemu-107-2026_11_25-03_00_02.vma.zst', zst, 'INFO: starting\nERROR: Backup of VM 107 failed - disk full\n'),
    put('vzdump-qemu-108-2026_11_25-03_00_02.vma.zst', zst, null),
  ]
  writeFileSync(join(dir, 'SHA256SUMS'), `${'0'.repeat(64)}  vzdump-qemu-106-2026_11_25-03_00_02.vma.zst\n`)
  const res = runNodeScript(list)
  const failed = (file: string) => fileItem('pve', list.find((b) => b.file === file)!, res.get(file)!).checks.filter((c) => c.status !== 'ok' && c.status !== 'skipped').map((c) => `${c.name}: ${c.detail}`)
  assert.equal(failed(good.file), [])
  assert.equal(fileItem('pve', good, res.get(good.file)!).checks.find((c) => c.name === 'checksum'), { name: 'checksum', status: 'ok', detail: '.sha256' })
  assert.equal(failed('vzdump-qemu-103-2026_11_25-03_00_02.vma.zst'), ['compression: zstd -t: Read error (39) : premature end'])
  assert.equal(failed('vzdump-qemu-104-2026_11_25-03_00_02.vma.zst'), ['vma header: wrong vma header chechsum (header MD5)'])
  assert.equal(failed('vzdump-lxc-111-2026_11_25-03_00_02.tar.gz'), ['pct.conf: ./etc/vzdump/pct.conf is not in the archive'])
  assert.equal(failed('vzdump-qemu-105-2026_11_25-03_00_02.vma.zst'), ['size: the file is empty (0 bytes)'])
  assert.match(failed('vzdump-qemu-106-2026_11_25-03_00_02.vma.zst')[0]!, /^checksum: SHA256SUMS expects 0000000000000000…, the file hashes to [0-9a-f]{16}…$/)
  assert.equal(failed('vzdump-qemu-107-2026_11_25-03_00_02.vma.zst'), ['log: ERROR: Backup of VM 107 failed - disk full'])
  assert.equal(failed('vzdump-qemu-108-2026_11_25-03_00_02.vma.zst'), ['log: no vzdump log beside the archive'])
  assert.is(fileItem('pve', list.at(-1)!, res.get(list.at(-1)!.file)!).status, 'warning')
})

test('node script, metadata only: sizes and logs, no archive read', () => {
  const zst = sh('zstd', ['-q', '-c'], vma())
  const list = [
    put('vzdump-qemu-120-2026_11_25-03_00_02.vma.zst', zst.subarray(0, 100)),
    put('vzdump-qemu-121-2026_11_25-03_00_02.vma.zst', Buffer.alloc(0)),
    backup('vzdump-qemu-122-2026_11_25-03_00_02.vma.zst', 10), // listed, but gone from disk
  ]
  const res = runNodeScript(list, 'meta')
  const status = (b: Backup) => fileItem('pve', b, res.get(b.file)!).status
  assert.equal(list.map(status), ['ok', 'failed', 'failed'])
  assert.equal(fileItem('pve', list[2]!, res.get(list[2]!.file)!).checks[0], { name: 'exists', status: 'failed', detail: 'no such file' })
})

test('node script: a VMA cut at an extent boundary (vma verify passes it) fails "vma clusters", each device named with its first missing cluster', () => {
  const two = writeVma({
    configs: [{ name: 'qemu-server.conf', data: 'name: t\n' }],
    devices: [{ name: 'drive-scsi0', data: Buffer.alloc(5 * 65536, 7) }, { name: 'drive-efidisk0', data: Buffer.alloc(2 * 65536, 1) }],
    ctime: 1764000000, clustersPerExtent: 3,
  })
  const afterExtents = (n: number) => { let p = two.readUInt32BE(56); for (let i = 0; i < n; i++) p += 512 + two.readUInt16BE(p + 6) * 4096; return p }
  const list = [
    put('vzdump-qemu-101-2026_11_25-03_00_02.vma.zst', sh('zstd', ['-q', '-c'], two.subarray(0, afterExtents(1)))),
    put('vzdump-qemu-101-2026_11_24-03_00_02.vma', two.subarray(0, afterExtents(2))),
    put('vzdump-qemu-101-2026_11_23-03_00_02.vma.gz', sh('gzip', ['-c'], two)),
  ]
  const res = runNodeScript(list)
  const items = list.map((b) => fileItem('pve', b, res.get(b.file)!))
  assert.equal(items.map((i) => i.status), ['failed', 'failed', 'ok'])
  const why = "(the archive ends early, at an extent boundary, so `vma verify` passes it); qmrestore would fail with \"detected missing cluster 3 for stream drive-scsi0\" after freeing the guest's disks"
  assert.equal(items[0]!.checks.filter((c) => c.name.startsWith('vma')), [
    { name: 'vma header', status: 'ok' }, { name: 'vma extents', status: 'ok' },
    { name: 'vma clusters', status: 'failed', detail: `device drive-scsi0 lacks cluster 3 and 1 more of 5; device drive-efidisk0 lacks cluster 0 and 1 more of 2 ${why}` },
  ])
  assert.is(items[1]!.checks.find((c) => c.name === 'vma clusters')!.detail, `device drive-efidisk0 lacks cluster 1 of 2 ${why.replace('cluster 3 for stream drive-scsi0', 'cluster 1 for stream drive-efidisk0')}`)
})

test('cluster reader: passes the stream byte for byte, by splice between pipes and by copy between files; reads only headers to count clusters', () => {
  const whole = writeVma({ configs: [{ name: 'qemu-server.conf', data: 'name: t\n' }], devices: [{ name: 'drive-scsi0', data: Buffer.alloc(7 * 65536, 3) }], ctime: 1764000000, clustersPerExtent: 2 })
  const cut = whole.subarray(0, whole.readUInt32BE(56) + 512 + whole.readUInt16BE(whole.readUInt32BE(56) + 6) * 4096) // the first extent only
  const junk = Buffer.from('not a vma at all\n'.repeat(1000))
  const digest = (b: Buffer) => createHash('sha256').update(b).digest('hex')
  for (const [name, data, exit, err] of [['whole', whole, 0, ''], ['cut', cut, 97, 'vma-clusters: detected missing cluster 2 for stream drive-scsi0 (5 of 7 clusters missing)\n'], ['junk', junk, 0, '']] as const) {
    writeFileSync(join(dir, `reader-${name}`), data)
    // pipe → pipe (splice), and file → file (no pipe at either end: copied)
    const piped = spawnSync('bash', ['-c', 'cat "$1" | perl -e "$2" | sha256sum', 'hdr', join(dir, `reader-${name}`), CLUSTER_READER], { encoding: 'utf8' })
    assert.is(piped.stdout.split(' ')[0], digest(data), `${name}: pipe to pipe`)
    assert.is(piped.stderr, err, `${name}: pipe to pipe`)
    const files = spawnSync('perl', ['-e', CLUSTER_READER], { stdio: [openSync(join(dir, `reader-${name}`), 'r'), openSync(join(dir, `reader-${name}.out`), 'w'), 'pipe'], encoding: 'utf8' })
    assert.is(files.status, exit, `${name}: file to file, exit`)
    assert.is(files.stderr, err)
    assert.is(digest(readFileSync(join(dir, `reader-${name}.out`))), digest(data), `${name}: file to file`)
  }
})

test('cluster reader, run with `config`: the header\'s qemu-server.conf to fd 3 (what pvesm extractconfig prints), the stream unchanged; none in the header: exit 96', () => {
  const conf = 'boot: order=scsi0\nname: web01\nscsi0: local-lvm:vm-101-disk-0,size=192K\n#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:\n'
  const cases = [
    ['with', writeVma({ configs: [{ name: 'qemu-server.fw', data: '[OPTIONS]\nenable: 1\n' }, { name: 'qemu-server.conf', data: conf }], devices: [{ name: 'drive-scsi0', data: Buffer.alloc(3 * 65536, 5) }], ctime: 1764000000 }), 0, conf, ''],
    ['without', writeVma({ configs: [], devices: [{ name: 'drive-scsi0', data: Buffer.alloc(3 * 65536, 5) }], ctime: 1764000000 }), 96, '', "vma-config: no qemu-server.conf in the archive's header\n"],
  ] as const
  for (const [name, data, exit, config, err] of cases) {
    writeFileSync(join(dir, `config-${name}`), data)
    const r = spawnSync('bash', ['-c', 'exec 3>"$3"; cat "$1" | perl -e "$2" config | sha256sum; exit "${PIPESTATUS[1]}"', 'hdr', join(dir, `config-${name}`), CLUSTER_READER, join(dir, `config-${name}.conf`)], { encoding: 'utf8' })
    assert.is(r.status, exit, `${name}: ${r.stderr}`)
    assert.is(r.stderr, err, name)
    assert.is(r.stdout.split(' ')[0], createHash('sha256').update(data).digest('hex'), `${name}: the stream passes unchanged`)
    assert.is(readFileSync(join(dir, `config-${name}.conf`), 'utf8'), config, name)
  }
  // without `config` (verify:backups' node script keeps fd 3 for its own output): nothing written there, exit 0
  const plain = spawnSync('bash', ['-c', 'exec 3>"$3"; perl -e "$2" <"$1" >/dev/null', 'hdr', join(dir, 'config-without'), CLUSTER_READER, join(dir, 'config-plain.conf')], { encoding: 'utf8' })
  assert.is(plain.status, 0, plain.stderr)
  assert.is(readFileSync(join(dir, 'config-plain.conf'), 'utf8'), '')
})

test('nodeInput sends the largest file first, so the node\'s cores finish together', () => {
  const list = [backup('vzdump-qemu-101-2026_11_23-03_00_02.vma.zst', 10), backup('vzdump-qemu-101-2026_11_24-03_00_02.vma.zst', 3000), backup('vzdump-lxc-110-2026_11_24-03_00_02.tar.zst', 200)]
  const ids = nodeInput(list.map((b, id) => ({ id, path: join(dir, b.file), backup: b })), () => dir).trim().split('\n').map((l) => l.split('\t')[0])
  assert.equal(ids, ['1', '2', '0'])
})

test('size differs from the listing: failed', () => {
  const b = backup('vzdump-qemu-101-2026_11_25-03_00_02.vma.zst', 1000)
  const item = fileItem('pve', b, { id: 0, size: 900, compression: 'ok', content: 'ok', checksum: 'skip', log: 'ok' })
  assert.equal(item.checks[0], { name: 'size', status: 'failed', detail: '900 bytes on disk, the storage listed 1000' })
})

test('vmaMessage strips g_error prefixes and sorts header vs extent errors', () => {
  assert.is(vmaMessage('** (process:12): ERROR **: 07:01:02.345: verify failed - wrong vma extent header chechsum'), 'wrong vma extent header chechsum')
  const item = fileItem('pve', backup('vzdump-qemu-101-2026_11_25-03_00_02.vma', 10), { id: 0, size: 10, compression: 'skip', content: 'fail:vma:** (vma:1): ERROR **: 01:02:03.004: not a vma file - wrong magic number', checksum: 'skip', log: 'ok' })
  assert.equal(item.checks.find((c) => c.status === 'failed'), { name: 'vma header', status: 'failed', detail: 'not a vma file - wrong magic number (magic)' })
})

test('linkOlderGood names the next older good backup of the same guest', () => {
  const mk = (file: string, status: FileItem['status']): FileItem => ({ ...fileItem('pve', backup(file, 1), { id: 0, size: 1, compression: 'ok', content: 'ok', checksum: 'skip', log: 'ok' }), status })
  const files = [mk('vzdump-qemu-101-2026_11_25-03_00_02.vma.zst', 'failed'), mk('vzdump-qemu-101-2026_11_24-03_00_02.vma.zst', 'failed'), mk('vzdump-qemu-101-2026_11_23-03_00_02.vma.zst', 'ok'), mk('vzdump-qemu-101-2026_11_20-03_00_02.vma.zst', 'failed'), mk('vzdump-qemu-102-2026_11_22-03_00_02.vma.zst', 'ok')]
  linkOlderGood(files)
  assert.equal(files.map((f) => f.nextOlderGood), ['local:backup/vzdump-qemu-101-2026_11_23-03_00_02.vma.zst', 'local:backup/vzdump-qemu-101-2026_11_23-03_00_02.vma.zst', undefined, null, undefined])
})

test('schedulePeriodHours reads Proxmox calendar events', () => {
  assert.is(schedulePeriodHours('03:00'), 24)
  assert.is(schedulePeriodHours('daily'), 24)
  assert.is(schedulePeriodHours('sun 01:00'), 168)
  assert.is(schedulePeriodHours('mon..fri 02:30'), 72)
  assert.is(schedulePeriodHours('mon,wed,fri 22:00'), 72)
  assert.is(schedulePeriodHours('*/6:00'), 6)
  assert.is(schedulePeriodHours('2,22:30'), 20)
  assert.is(schedulePeriodHours('weekly'), 168)
  assert.is(schedulePeriodHours('nonsense here'), undefined)
})

test('expectedGuests: resources (no templates) and job guests, max age from the schedule', () => {
  const r = (vmid: number, template = false) => ({ vmid, type: 'qemu' as const, node: 'pve', status: 'running', name: `g${vmid}`, lock: undefined, template })
  const job = (vmids: number[], schedule: string, all = false) => ({ id: 'j', schedule, enabled: true, storage: 'local', all, vmids })
  assert.equal(expectedGuests([r(101), r(900, true)], [], undefined).map((g) => [g.vmid, g.maxAgeHours]), [[101, 26]])
  assert.equal(expectedGuests([r(101), r(102)], [job([102, 105], 'sun 01:00')], undefined).map((g) => [g.vmid, g.maxAgeHours]), [[101, 26], [102, 170], [105, 170]])
  assert.equal(expectedGuests([r(101)], [job([], '*/6:00', true)], undefined).map((g) => g.maxAgeHours), [8])
  assert.equal(expectedGuests([r(101)], [job([], '*/6:00', true)], 48).map((g) => g.maxAgeHours), [48])
})

test('guestItem: no backup, damaged only, stale, fresh', () => {
  const g = { vmid: 101, type: 'qemu' as const, name: 'web01', maxAgeHours: 26 }
  const now = Date.UTC(2026, 10, 25, 12) / 1000
  const f = (hoursAgo: number, status: FileItem['status']) => ({ vmid: 101, volid: `v${hoursAgo}`, ctime: now - hoursAgo * 3600, size: 5, status })
  assert.is(guestItem(g, [], now).detail, 'no backup')
  assert.is(guestItem(g, [f(1, 'failed')], now).detail, 'no good backup (1 damaged)')
  const stale = guestItem(g, [f(1, 'failed'), f(57, 'ok')], now)
  assert.is(stale.status, 'warning')
  assert.is(stale.detail, 'stale: newest good backup is 2 d 9 h old (max 26 h)')
  assert.is(guestItem(g, [f(3, 'warning')], now).status, 'ok')
})

test('stateChecks: empty, not JSON, missing fields, good', () => {
  const names = (t: string) => stateChecks(t).checks.filter((c) => c.status === 'failed').map((c) => `${c.name}: ${c.detail}`)
  assert.equal(names(''), ['not empty: the version is empty (0 bytes)'])
  assert.match(names('{"version": 4, ')[0]!, /^json: not JSON: /)
  assert.equal(names('{"version":4}'), ['state fields: missing serial, lineage'])
  assert.equal(names('{"version":4,"serial":3,"lineage":"x","resources":[]}'), [])
  assert.is(stateChecks('{"version":4,"serial":3,"lineage":"x"}').serial, 3)
  assert.equal(stateChecks(undefined, 'boom').checks, [{ name: 'download', status: 'failed', detail: 'boom' }])
})

test('metrics: textfile format, per VMID, written atomically', () => {
  const now = 1764072000
  const b = backup('vzdump-qemu-101-2026_11_25-03_00_02.vma.zst', 1234)
  const ok = fileItem('pve', b, { id: 0, size: 1234, compression: 'ok', content: 'ok', checksum: 'skip', log: 'ok' })
  const bad = { ...ok, volid: 'x', status: 'failed' as const, ctime: ok.ctime + 10 }
  const guest = guestItem({ vmid: 101, type: 'qemu', name: 'web01', maxAgeHours: 26 }, [ok, bad], now)
  const text = renderMetrics([ok, bad, guest], { finishedAt: now * 1000, durationSeconds: 4.2, exitCode: 1 })
  assert.ok(text.includes(`homelab_dr_backup_last_good_timestamp_seconds{vmid="101",type="qemu"} ${b.ctime}\n`))
  assert.ok(text.includes('homelab_dr_backup_last_good_size_bytes{vmid="101",type="qemu"} 1234\n'))
  assert.ok(text.includes('homelab_dr_backup_files{vmid="101",type="qemu",result="failed"} 1\n'))
  assert.ok(text.includes('homelab_dr_backup_missing_or_stale{vmid="101",type="qemu"} 0\n'))
  assert.ok(text.includes('homelab_dr_verify_exit_code 1\n'))
  for (const l of text.trim().split('\n')) assert.match(l, /^(# (HELP|TYPE) homelab_dr_\w+ .+|homelab_dr_\w+(\{[^}]*\})? [-+\d.e]+)$/)
  const out = join(dir, 'metrics', 'hdr.prom')
  writeAtomic(out, text)
  writeAtomic(out, text)
  assert.is(readFileSync(out, 'utf8'), text)
  assert.equal(readdirSync(join(dir, 'metrics')), ['hdr.prom'])
})

test('clock', () => {
  assert.is(clock(42), '0:42')
  assert.is(clock(725), '12:05')
  assert.is(clock(3723), '1:02:03')
})

test.run()
