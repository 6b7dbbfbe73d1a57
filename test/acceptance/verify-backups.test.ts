// verify:backups against the lab (US5): real archives on the simulated node, damaged on purpose by
// writing into its dump folder, and real state versions in the lab's versioned S3.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawnSync } from 'node:child_process'
import { createHash, randomUUID } from 'node:crypto'
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ListObjectVersionsCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { runTask } from '../helpers.ts'
import { FIXTURE, LAB_DIR, labUp } from '../lab/lab.ts'
import * as node from '../lab/node.ts'
import { ensureSeed } from '../lab/seed.ts'
import { s3Client } from '../lab/s3.ts'
import { humanSize } from '../../lib/backups.ts'

const DUMP = join(LAB_DIR, 'pve', 'var', 'lib', 'vz', 'dump')
const NOW = '2026-11-25T12:00:00' // the node's local time, like the archives' names (HDR_NOW)
const STATE_KEY = `verify-test/${randomUUID()}/terraform.tfstate`
const f = (name: string) => join(DUMP, name)
const size = (name: string) => humanSize(statSync(f(name)).size)

/** A copy of the fixture homelab: the lab node's SSH user, and one environment (prod) whose state
 *  lives under a key of this test's own, so other suites' state versions do not show up here. */
function homelab(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hdr-verify-tf-'))
  cpSync(FIXTURE, dir, { recursive: true, filter: (p) => !p.includes('.terraform') && !/\.tfstate/.test(p) })
  const tfvars = join(dir, 'terraform.tfvars')
  writeFileSync(tfvars, readFileSync(tfvars, 'utf8').replace(/user = "[^"]*"/, `user = "${node.NODE_USER}"`))
  for (const e of ['lab', 'minio', 'monitoring']) rmSync(join(dir, 'environments', e), { recursive: true, force: true })
  const main = join(dir, 'environments', 'prod', 'main.tf')
  writeFileSync(main, readFileSync(main, 'utf8').replace(/key\s*=\s*"[^"]*"/, `key = "${STATE_KEY}"`))
  return dir
}

const TF = homelab()
const verify = (args: string[]) => runTask('verify:backups', args, { env: { HOMELAB_TF_DIR: TF, HDR_NOW: NOW }, timeoutMs: 120_000 })
const lines = (out: string) => out.split('\n').filter((l) => /^[✓✗!] /.test(l)).sort()

/** The fixture's dump folder, as seeded: this suite changes nothing else on the node. */
function freshDump(): void {
  rmSync(DUMP, { recursive: true, force: true })
  cpSync(join(ensureSeed(LAB_DIR), 'var', 'lib', 'vz', 'dump'), DUMP, { recursive: true })
}

const zstd = (args: string[], input: Buffer) => {
  const r = spawnSync('zstd', args, { input, maxBuffer: 1 << 28 })
  if (r.status !== 0) throw new Error(`zstd ${args.join(' ')}: ${r.stderr}`)
  return r.stdout
}

test.before(async () => {
  await labUp(['node', 's3'])
  await node.reset(LAB_DIR)
})

test('US5.1 every file of a healthy node is checked and reported ✓; the guest without backup is a warning', async () => {
  freshDump()
  const r = await verify(['--max-age', '80'])
  assert.equal(lines(r.stdout), [
    '! VM 102 (db01): no backup',
    `✓ CT 110 (dns01): newest good backup 9 h old`,
    `✓ CT 110 vzdump-lxc-110-2026_11_23-03_00_02.tar.zst ${size('vzdump-lxc-110-2026_11_23-03_00_02.tar.zst')}`,
    `✓ CT 110 vzdump-lxc-110-2026_11_25-03_00_02.tar.zst ${size('vzdump-lxc-110-2026_11_25-03_00_02.tar.zst')}`,
    `✓ CT 120 (minio): newest good backup 9 h old`,
    `✓ CT 120 vzdump-lxc-120-2026_11_25-03_00_02.tar.zst ${size('vzdump-lxc-120-2026_11_25-03_00_02.tar.zst')}`,
    `✓ VM 101 (web01): newest good backup 9 h old`,
    `✓ VM 101 vzdump-qemu-101-2026_11_20-03_00_02.vma.lzo ${size('vzdump-qemu-101-2026_11_20-03_00_02.vma.lzo')}`,
    `✓ VM 101 vzdump-qemu-101-2026_11_23-03_00_02.vma.gz ${size('vzdump-qemu-101-2026_11_23-03_00_02.vma.gz')}`,
    `✓ VM 101 vzdump-qemu-101-2026_11_25-03_00_02.vma.zst ${size('vzdump-qemu-101-2026_11_25-03_00_02.vma.zst')}`,
    `✓ VM 200 (monitoring): newest good backup 9 h old`,
    `✓ VM 200 vzdump-qemu-200-2026_11_25-03_00_02.vma.zst ${size('vzdump-qemu-200-2026_11_25-03_00_02.vma.zst')}`,
  ].sort())
  assert.match(r.stdout, /^12 checked, 11 ok, 1 warnings, 0 failed in 0:\d\d$/m)
  assert.is(r.code, 5, 'warnings only: exit 5')
})

test('US5.1 + US5.3 damaged files are each reported with VMID, file, size and the failed check; good ones are not', async () => {
  freshDump()
  // a truncated .vma.zst
  const v101 = 'vzdump-qemu-101-2026_11_25-03_00_02.vma.zst'
  truncateSync(f(v101), Math.floor(statSync(f(v101)).size / 2))
  // an empty file (with a good log)
  const empty = 'vzdump-qemu-101-2026_11_24-03_00_02.vma.zst'
  writeFileSync(f(empty), '')
  writeFileSync(f('vzdump-qemu-101-2026_11_24-03_00_02.log'), readFileSync(f('vzdump-qemu-101-2026_11_23-03_00_02.log'), 'utf8').replaceAll('2026_11_23', '2026_11_24'))
  // a .log with ERROR:
  const errLine = '2026-11-20 03:00:09 ERROR: Backup of VM 101 failed - job errors'
  appendFileSync(f('vzdump-qemu-101-2026_11_20-03_00_02.log'), errLine + '\n')
  // a VMA with one flipped header byte, compression intact: only the header MD5 catches it
  const v200 = 'vzdump-qemu-200-2026_11_25-03_00_02.vma.zst'
  const raw = zstd(['-q', '-d', '-c', f(v200)], Buffer.alloc(0))
  raw[100] = raw[100]! ^ 0x01
  writeFileSync(f(v200), zstd(['-q', '-c'], raw))
  // an LXC tar without ./etc/vzdump/pct.conf
  const c120 = 'vzdump-lxc-120-2026_11_25-03_00_02.tar.zst'
  const root = mkdtempSync(join(tmpdir(), 'hdr-ct-'))
  mkdirSync(join(root, 'etc'))
  writeFileSync(join(root, 'etc', 'hostname'), 'minio\n')
  const tar = spawnSync('tar', ['--zstd', '-cf', f(c120), '-C', root, '.'])
  assert.is(tar.status, 0, String(tar.stderr))
  // a bad .sha256 beside one archive, a good SHA256SUMS entry for another
  const c110new = 'vzdump-lxc-110-2026_11_25-03_00_02.tar.zst'
  const c110old = 'vzdump-lxc-110-2026_11_23-03_00_02.tar.zst'
  writeFileSync(f(`${c110new}.sha256`), `${'0'.repeat(64)}  ${c110new}\n`)
  const realNew = createHash('sha256').update(readFileSync(f(c110new))).digest('hex')
  writeFileSync(f('SHA256SUMS'), `${createHash('sha256').update(readFileSync(f(c110old))).digest('hex')}  ${c110old}\n`)

  const r = await verify([])
  const gz = 'vzdump-qemu-101-2026_11_23-03_00_02.vma.gz'
  assert.equal(lines(r.stdout), [
    `✗ VM 101 ${v101} ${size(v101)}: compression: zstd -t: Read error (39) : premature end`,
    `✗ VM 101 ${empty} 0 B: size: the file is empty (0 bytes)`,
    `✗ VM 101 vzdump-qemu-101-2026_11_20-03_00_02.vma.lzo ${size('vzdump-qemu-101-2026_11_20-03_00_02.vma.lzo')}: log: ${errLine}`,
    `✓ VM 101 ${gz} ${size(gz)}`,
    `✗ VM 200 ${v200} ${size(v200)}: vma header: wrong vma header chechsum (header MD5)`,
    `✗ CT 120 ${c120} ${size(c120)}: pct.conf: ./etc/vzdump/pct.conf is not in the archive`,
    `✗ CT 110 ${c110new} ${size(c110new)}: checksum: .sha256 expects 0000000000000000…, the file hashes to ${realNew.slice(0, 16)}…`,
    `✓ CT 110 ${c110old} ${size(c110old)}`,
    `! VM 101 (web01): stale: newest good backup is 2 d 9 h old (max 26 h) — local:backup/${gz}`,
    '! VM 102 (db01): no backup',
    `! CT 110 (dns01): stale: newest good backup is 2 d 9 h old (max 26 h) — local:backup/${c110old}`,
    '! CT 120 (minio): no good backup (1 damaged)',
    '! VM 200 (monitoring): no good backup (1 damaged)',
  ].sort())
  // every damaged file names the next older good backup of its guest
  assert.ok(r.stdout.includes([
    'Damaged backups, and the next older good backup of the same guest:',
  ].join('\n')))
  for (const l of [
    `  VM 101 ${v101} → local:backup/${gz}`,
    `  VM 101 ${empty} → local:backup/${gz}`,
    '  VM 101 vzdump-qemu-101-2026_11_20-03_00_02.vma.lzo → no older good backup',
    `  VM 200 ${v200} → no older good backup`,
    `  CT 120 ${c120} → no older good backup`,
    `  CT 110 ${c110new} → local:backup/${c110old}`,
  ]) assert.ok(r.stdout.split('\n').includes(l), `missing line: ${l}\n${r.stdout}`)
  assert.match(r.stdout, /^13 checked, 2 ok, 5 warnings, 6 failed in 0:\d\d$/m)
  assert.is(r.code, 1)
})

test('US5.3 a stale backup is a warning naming the VMID (exit 5); --json has every item and check', async () => {
  freshDump()
  const r = await verify(['--vmid', '110', '--max-age', '6', '--json'])
  assert.is(r.code, 5)
  const doc = JSON.parse(r.stdout) as { exitCode: number; summary: string; facts: { items: Array<{ kind: string; status: string; vmid: number; checks?: Array<{ name: string; status: string }> }>; counts: Record<string, number> } & Record<string, unknown> }
  assert.equal(lines(r.stderr), [
    `! CT 110 (dns01): stale: newest good backup is 9 h old (max 6 h) — local:backup/vzdump-lxc-110-2026_11_25-03_00_02.tar.zst`,
    `✓ CT 110 vzdump-lxc-110-2026_11_23-03_00_02.tar.zst ${size('vzdump-lxc-110-2026_11_23-03_00_02.tar.zst')}`,
    `✓ CT 110 vzdump-lxc-110-2026_11_25-03_00_02.tar.zst ${size('vzdump-lxc-110-2026_11_25-03_00_02.tar.zst')}`,
  ])
  assert.equal(doc.facts.counts, { checked: 3, ok: 2, warnings: 1, failed: 0 })
  const file = doc.facts.items.find((i) => i.kind === 'file')!
  assert.equal(file.checks!.map((c) => `${c.name}=${c.status}`), ['size=ok', 'compression=ok', 'tar listing=ok', 'pct.conf=ok', 'log=ok'])
  assert.ok((doc.facts['node:pve'] as { sshCommands: number }).sshCommands <= 8, 'SSH commands do not grow with the files')
})

test('US5.3 --metrics writes a Prometheus textfile atomically, per VMID', async () => {
  freshDump()
  truncateSync(f('vzdump-qemu-200-2026_11_25-03_00_02.vma.zst'), 100)
  const out = join(mkdtempSync(join(tmpdir(), 'hdr-prom-')), 'homelab_dr.prom')
  const r = await verify(['--metrics', out])
  assert.is(r.code, 1)
  const text = readFileSync(out, 'utf8')
  assert.ok(text.includes('homelab_dr_backup_missing_or_stale{vmid="102",type="qemu"} 1\n'), text)
  assert.ok(text.includes('homelab_dr_backup_files{vmid="200",type="qemu",result="failed"} 1\n'), text)
  assert.ok(text.includes('homelab_dr_backup_last_good_timestamp_seconds{vmid="200",type="qemu"} 0\n'), text)
  assert.ok(text.includes('homelab_dr_backup_missing_or_stale{vmid="101",type="qemu"} 0\n'), text)
  assert.ok(!existsSync(`${out}.tmp`))
})

test('US5.2 every state version is checked: not JSON and empty versions are reported by version', async () => {
  const s3 = s3Client()
  const good = (serial: number) => JSON.stringify({ version: 4, terraform_version: '1.11.0', serial, lineage: 'verify-test', outputs: {}, resources: [] })
  for (const body of [good(1), 'this is not { json', '', good(2)]) {
    await s3.send(new PutObjectCommand({ Bucket: 'tfstate', Key: STATE_KEY, Body: Buffer.from(body), ContentType: 'application/json' }))
  }
  const listed = await s3.send(new ListObjectVersionsCommand({ Bucket: 'tfstate', Prefix: STATE_KEY }))
  const versions = (listed.Versions ?? []).filter((v) => v.Key === STATE_KEY).sort((a, b) => a.LastModified!.getTime() - b.LastModified!.getTime())
  assert.is(versions.length, 4)
  const at = (i: number) => {
    const v = versions[i]!
    return `${v.VersionId} (${v.LastModified!.toISOString().replace(/\.\d{3}Z$/, 'Z')}${v.IsLatest ? ', current' : ''})`
  }
  const r = await verify(['--states', '--no-files'])
  const notJson = lines(r.stdout).find((l) => l.startsWith(`✗ state prod version ${at(1)} 18 B: json: not JSON: `))
  assert.ok(notJson, r.stdout)
  assert.equal(lines(r.stdout), [
    `✓ state prod version ${at(0)} ${humanSize(good(1).length)} serial 1`,
    notJson!,
    `✗ state prod version ${at(2)} 0 B: not empty: the version is empty (0 bytes)`,
    `✓ state prod version ${at(3)} ${humanSize(good(2).length)} serial 2`,
  ].sort())
  assert.match(r.stdout, /^4 checked, 2 ok, 0 warnings, 2 failed in 0:\d\d$/m)
  assert.is(r.code, 1)
  s3.destroy()
})

test('US5.1 --dry-run checks metadata only: an empty file is caught, a truncated one is not read', async () => {
  freshDump()
  writeFileSync(f('vzdump-qemu-101-2026_11_23-03_00_02.vma.gz'), '')
  truncateSync(f('vzdump-qemu-101-2026_11_25-03_00_02.vma.zst'), 100)
  const r = await verify(['--vmid', '101', '--dry-run'])
  assert.equal(lines(r.stdout), [
    `✓ VM 101 (web01): newest good backup 9 h old`,
    `✓ VM 101 vzdump-qemu-101-2026_11_20-03_00_02.vma.lzo ${size('vzdump-qemu-101-2026_11_20-03_00_02.vma.lzo')}`,
    `✓ VM 101 vzdump-qemu-101-2026_11_25-03_00_02.vma.zst 100 B`,
    `✗ VM 101 vzdump-qemu-101-2026_11_23-03_00_02.vma.gz 0 B: size: the file is empty (0 bytes)`,
  ].sort())
  assert.match(r.stdout, /^\[dry-run\] metadata only \(size, log; no archive read\): 4 checked, 3 ok, 0 warnings, 1 failed in 0:\d\d$/m)
  assert.is(r.code, 1)
})

test('EF-005 a repo whose MinIO credentials are in a -var-file (secrets.tfvars): verify:backups runs; rebuild:minio says what to add', async () => {
  // test/fixtures/no-tfvars as an operator has it, pointed at the lab node through .env
  const dir = mkdtempSync(join(tmpdir(), 'hdr-verify-novars-'))
  cpSync(join(FIXTURE, '..', 'no-tfvars'), dir, { recursive: true })
  writeFileSync(join(dir, '.env'), `HDR_PROXMOX_NODES=pve=${node.NODE_USER}@127.0.0.2:2222\nHDR_BACKUP_STORAGE=local\n`)
  try {
    freshDump()
    const env = { HOMELAB_TF_DIR: dir, HDR_NOW: NOW, AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '' }
    const r = await runTask('verify:backups', ['--vmid', '101', '--dry-run'], { env, timeoutMs: 120_000 })
    assert.ok(lines(r.stdout).includes('✓ VM 101 (web01): newest good backup 9 h old'), `exit ${r.code}\n${r.stdout}${r.stderr}`)
    assert.is(r.code, 0, r.stderr)
    const m = await runTask('rebuild:minio', ['--dry-run'], { env, timeoutMs: 120_000 })
    assert.is(m.code, 4, m.stderr)
    assert.ok(m.stderr.includes("✗ Missing minio_root_user: variable 'minio_root_user' is not set (searched homelab.auto.tfvars, variables.tf)."), m.stderr)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('usage: --no-files alone has nothing to check (exit 2, before any I/O)', async () => {
  const r = await verify(['--no-files'])
  assert.is(r.code, 2)
  assert.match(r.stderr, /Nothing to check: --no-files skips the node, so add --states\./)
})

test.after(async () => {
  freshDump()
  rmSync(TF, { recursive: true, force: true })
})

test.run()
