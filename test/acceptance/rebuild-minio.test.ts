// rebuild:minio (US3, EF-002/004/006/007) against the lab: CT 120 on the simulated node is bound to the
// real versioned S3 (Ceph RGW, docs/lab.md): destroying it really wipes the buckets and stops S3; a CT
// created from the template starts S3 (empty) only once MinIO is installed and started inside it
// (`pct exec`, the template's systemctl). States come from real terraform applies of a copy of the
// fixture, pushed back from the snapshot mirror; every environment is re-initialised for real.
import { test as uvuTest } from 'uvu'
import * as assert from 'uvu/assert'
import { spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { GetBucketVersioningCommand, GetObjectCommand, ListBucketsCommand, PutBucketVersioningCommand } from '@aws-sdk/client-s3'
import { runTask, type RunOpts, type RunOutput } from '../helpers.ts'
import { FIXTURE, LAB_DIR, labUp } from '../lab/lab.ts'
import * as node from '../lab/node.ts'
import * as s3lab from '../lab/s3.ts'
import { commandLine } from '../../lib/ssh.ts'
import { terraform } from '../../lib/terraform.ts'

const PVE = join(LAB_DIR, 'pve')
const CT_CONF = join(PVE, 'etc/pve/nodes/pve/lxc/120.conf')
const TEMPLATE = join(PVE, 'var/lib/vz/template/cache/debian-12-standard_12.7-1_amd64.tar.zst')
const ENVS = ['lab', 'minio', 'monitoring', 'prod'] as const
const creds = { accessKey: s3lab.S3_ACCESS_KEY, secretKey: s3lab.S3_SECRET_KEY }

const tfDir = mkdtempSync(join(tmpdir(), 'hdr-rebuild-minio-'))
const mirror = join(tfDir, '.mirror')
cpSync(FIXTURE, tfDir, { recursive: true, filter: (p) => !p.includes('.terraform') && !/\.tfstate/.test(p) })
const s3 = s3lab.s3Client()

// The MinIO "binary" the install downloads: served here, so the test sees the download happen.
let server: Server
let downloads = 0
let binaryUrl = ''

const rebuild = (args: string[], opts: RunOpts = {}): Promise<RunOutput> =>
  runTask('rebuild:minio', args, { timeoutMs: 240_000, ...opts, env: { HOMELAB_TF_DIR: tfDir, HDR_STATE_DIR: mirror, HDR_MINIO_BINARY_URL: binaryUrl, AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '', ...opts.env } })
const show = (r: RunOutput) => `exit ${r.code}\n${r.output}`
/** The exact line (a step's duration, ` (0.4s)`, aside). */
const has = (r: RunOutput, line: string) => r.output.split('\n').some((l) => l === line || new RegExp(`^${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(\\d+\\.\\ds\\)$`).test(l))
const calls = () => node.calls(LAB_DIR).map((c) => c.argv.join(' '))
const WRITES = /^(vzdump|pct (restore|create|start|stop|destroy|exec))\b/
const writes = () => calls().filter((c) => WRITES.test(c))
const clearCalls = () => rmSync(join(PVE, 'calls.log'), { force: true })
const onNode = (...argv: string[]) => {
  const r = spawnSync('ssh', [...node.sshArgs(LAB_DIR), 'pve', commandLine(argv)], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`)
  return r.stdout
}
const buckets = async () => ((await s3.send(new ListBucketsCommand({}))).Buckets ?? []).map((b) => b.Name).sort()
const versioning = async (Bucket: string) => (await s3.send(new GetBucketVersioningCommand({ Bucket }))).Status
const stateIn = async (env: string) => JSON.parse((await (await s3.send(new GetObjectCommand({ Bucket: 'tfstate', Key: `${env}/terraform.tfstate` }))).Body?.transformToString()) ?? '') as { serial: number; lineage: string }
/** The MinIO CT destroyed as a disaster would: stopped (S3 stops) and destroyed (the S3 data wiped). */
const destroyMinio = async () => {
  onNode('pct', 'stop', '120')
  onNode('pct', 'destroy', '120')
  clearCalls()
}

const reports = join(tfDir, '.reports')
let scratch: RunOutput | undefined
/** The states each environment had before the disaster (serial, lineage). */
const before: Record<string, { serial: number; lineage: string }> = {}

const test = (name: string, fn: () => Promise<void>) => {
  if (!process.env.HDR_ONLY || process.env.HDR_ONLY.split('|').some((x) => name.includes(x))) uvuTest(name, fn)
}

uvuTest.before(async () => {
  await labUp(['node', 's3'])
  await node.reset(LAB_DIR)
  await s3lab.up(LAB_DIR)
  server = createServer((_req, res) => { downloads++; res.end('#!/bin/sh\necho "minio (lab stand-in)"\n') })
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok))
  binaryUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}/minio`
  for (const env of ENVS) {
    const dir = join(tfDir, 'environments', env)
    for (const args of [['init', '-input=false'], ['apply', '-auto-approve', '-input=false']]) {
      const r = await terraform(dir, args, { creds })
      if (r.exitCode !== 0) throw new Error(`terraform ${args[0]} in ${env}: ${r.stderr}${r.stdout}`)
    }
    const st = await stateIn(env)
    before[env] = { serial: st.serial, lineage: st.lineage }
  }
  // The operator's nightly snapshot: every state in the local mirror.
  const snap = await runTask('restore:state', ['snapshot'], { env: { HOMELAB_TF_DIR: tfDir, HDR_STATE_DIR: mirror, AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '' } })
  if (snap.code !== 0) throw new Error(show(snap))
  clearCalls()
})

uvuTest.after(async () => {
  s3lab.installHooks(LAB_DIR, ['s3-start', 's3-stop', 's3-wipe'])
  if (existsSync(`${TEMPLATE}.away`)) renameSync(`${TEMPLATE}.away`, TEMPLATE)
  await node.reset(LAB_DIR)
  await s3lab.up(LAB_DIR)
  server?.close()
  s3.destroy()
  rmSync(tfDir, { recursive: true, force: true })
})

test('US3.1 healthy: the diagnosis is printed, nothing changes, exit 0 — twice', async () => {
  for (let i = 0; i < 2; i++) {
    const r = await rebuild([])
    assert.is(r.code, 0, show(r))
    for (const line of [
      'Diagnosis of MinIO (http://127.0.0.4:9000, CT 120):',
      '✓ CT 120 (minio): running',
      '✓ S3 answers on http://127.0.0.4:9000',
      '✓ bucket tfstate: versioning Enabled',
      '✓ bucket backups: versioning Enabled',
      '✓ state of prod (s3://tfstate/prod/terraform.tfstate): present',
      '✓ MinIO is healthy: the container runs, S3 answers, every bucket is versioned, the states are there. Nothing was changed.',
    ]) assert.ok(has(r, line), `missing: ${line}\n${show(r)}`)
  }
  assert.equal(writes(), [])
  assert.equal(await buckets(), ['backups', 'tfstate'])
})

test('EF-002 versioning Suspended, no terminal and no --yes: the plan, a refusal, nothing changed', async () => {
  await s3.send(new PutBucketVersioningCommand({ Bucket: 'backups', VersioningConfiguration: { Status: 'Suspended' } }))
  const r = await rebuild([])
  assert.is(r.code, 3, show(r))
  assert.ok(r.output.includes('✗ bucket backups: versioning Suspended'), show(r))
  assert.ok(r.output.includes('! Versioning of bucket backups is Suspended: it will be re-enabled (without it, no state version can be restored).'), show(r))
  assert.ok(r.output.includes('Refusing to continue without confirmation: there is no terminal to ask on.'), show(r))
  assert.is(await versioning('backups'), 'Suspended')
  assert.equal(writes(), [])
})

test('US3.1 versioning Suspended is re-enabled once confirmed; every environment reconnects', async () => {
  const r = await rebuild(['--yes'])
  assert.is(r.code, 0, show(r))
  assert.is(await versioning('backups'), 'Enabled')
  assert.ok(r.output.includes('Changed: versioning of backups enabled (was Suspended).'), show(r))
  for (const env of ENVS) assert.match(r.output, new RegExp(`✓ ${env}: reconnected: terraform init \\+ state list: \\d+ resources?`))
  assert.equal(writes(), [])
})

test('EF-004 wrong credentials: a clear error, exit 4, nothing changed, the secret never printed', async () => {
  const secret = 'not-the-right-secret-1234'
  const r = await rebuild(['--yes'], { env: { AWS_ACCESS_KEY_ID: s3lab.S3_ACCESS_KEY, AWS_SECRET_ACCESS_KEY: secret } })
  assert.is(r.code, 4, show(r))
  assert.ok(r.output.includes('✗ S3 at http://127.0.0.4:9000 answers but refuses the credentials: nothing was changed (a rebuild would not fix wrong keys).'), show(r))
  assert.not.ok(r.output.includes(secret))
  assert.not.ok(r.output.includes(s3lab.S3_SECRET_KEY))
  assert.equal(writes(), [])
  assert.equal(await buckets(), ['backups', 'tfstate'])
})

test('EF-007 CT 120 destroyed (S3 really wiped): --dry-run --from-scratch shows the plan with real facts and changes nothing', async () => {
  await destroyMinio()
  assert.not.ok(existsSync(CT_CONF))
  assert.not.ok(await s3lab.reachable(), 'S3 should be down with its CT')
  const r = await rebuild(['--from-scratch', '--push-state', '--dry-run'])
  assert.is(r.code, 0, show(r))
  for (const line of [
    '✗ CT 120: missing',
    '✓ Container template on the node: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst',
    '  Container:  new CT 120 \'minio\' from local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst',
    '       pct create 120 local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst --hostname minio --net0 name=eth0,bridge=vmbr0,ip=127.0.0.4/8,gw=127.0.0.1 --cores 2 --memory 1024 --swap 512 --rootfs local-lvm:4 --unprivileged 1 --onboot 1',
    `[dry-run] Push the state of prod: serial ${before.prod!.serial}, lineage ${before.prod!.lineage} → s3://tfstate/prod/terraform.tfstate: from ${join(mirror, 'prod', `${before.prod!.serial}.tfstate`)} (only if the object is missing)`,
    'Dry run: nothing was changed. Run the same command without --dry-run to rebuild.',
  ]) assert.ok(has(r, line), `missing: ${line}\n${show(r)}`)
  assert.match(r.output, /S3 on http:\/\/127\.0\.0\.4:9000: no answer/)
  assert.equal(writes(), [])
  assert.not.ok(existsSync(CT_CONF))
  assert.not.ok(await s3lab.reachable())
  assert.is(downloads, 0)
})

test('EF-001 no container template on the node: exit 4, a prerequisite named, nothing created', async () => {
  renameSync(TEMPLATE, `${TEMPLATE}.away`)
  try {
    const r = await rebuild(['--from-scratch', '--yes'])
    assert.is(r.code, 4, show(r))
    assert.ok(r.output.includes("✗ No container template on node 'pve' (storages with templates: local): a new MinIO CT cannot be created. Nothing was changed."), show(r))
    assert.ok(r.output.includes('pveam download local'), show(r))
    assert.equal(writes(), [])
    assert.not.ok(existsSync(CT_CONF))
  } finally {
    renameSync(`${TEMPLATE}.away`, TEMPLATE)
  }
})

test('EF-005 S3 never answers after the rebuild: a bounded wait, exit 5, what to check', async () => {
  // MinIO "fails to start" in the new CT: the lab's start hook does nothing.
  const hook = join(LAB_DIR, 'hooks', 's3-start')
  rmSync(hook, { force: true })
  writeFileSync(hook, '#!/bin/sh\nexit 0\n', { mode: 0o755 })
  try {
    const t0 = Date.now()
    const r = await rebuild(['--from-scratch', '--yes', '--wait', '3'])
    assert.is(r.code, 5, show(r))
    assert.ok(Date.now() - t0 < 60_000)
    assert.match(r.output, /✗ S3 on http:\/\/127\.0\.0\.4:9000 did not answer within 3 s \(\d+ attempts, last: unreachable\)\./)
    assert.ok(r.output.includes('Check inside CT 120: pct exec 120 -- systemctl status minio'), show(r))
    assert.ok(r.output.includes('Changed before the failure: CT 120 created; CT 120 started; MinIO installed in CT 120.'), show(r))
  } finally {
    rmSync(hook, { force: true })
    symlinkSync(join(import.meta.dirname, '..', 'lab', 'hooks', 's3-start'), hook)
  }
  // Back to the disaster: no CT, no S3.
  await destroyMinio()
})

test('US3.1 from scratch: a new CT with the same parameters, MinIO installed and started in it, buckets versioned', async () => {
  assert.not.ok(existsSync(CT_CONF))
  const got = downloads
  const r = await rebuild(['--from-scratch', '--push-state', '--yes'], { env: { HDR_REPORTS_DIR: reports } })
  scratch = r
  assert.is(r.code, 0, show(r))
  // The node: created from the template, started, MinIO installed with pct exec (credentials on stdin).
  const w = writes()
  assert.is(w[0], 'pct create 120 local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst --hostname minio --net0 name=eth0,bridge=vmbr0,ip=127.0.0.4/8,gw=127.0.0.1 --cores 2 --memory 1024 --swap 512 --rootfs local-lvm:4 --unprivileged 1 --onboot 1')
  assert.is(w[1], 'pct start 120')
  assert.match(w[2]!, /^pct exec 120 -- bash -c /)
  assert.is(w.length, 3, w.join('\n'))
  assert.not.ok(calls().some((c) => c.includes(s3lab.S3_SECRET_KEY)), 'the secret must not be on a node command line')
  const conf = readFileSync(CT_CONF, 'utf8')
  for (const l of ['cores: 2', 'hostname: minio', 'memory: 1024', 'onboot: 1', 'unprivileged: 1']) assert.ok(conf.includes(`${l}\n`), conf)
  assert.match(conf, /^net0: name=eth0,bridge=vmbr0,gw=127\.0\.0\.1,hwaddr=BC:24:11:[0-9A-F:]{8},ip=127\.0\.0\.4\/8,type=veth$/m)
  assert.match(conf, /^rootfs: local-lvm:vm-120-disk-0,size=4G$/m)
  const root = join(PVE, 'images/vm-120-disk-0')
  assert.is(downloads, got + 1)
  assert.ok(readFileSync(join(root, 'usr/local/bin/minio'), 'utf8').includes('lab stand-in'))
  assert.match(readFileSync(join(root, 'etc/systemd/system/minio.service'), 'utf8'), /^ExecStart=\/usr\/local\/bin\/minio server \$MINIO_OPTS \$MINIO_VOLUMES$/m)
  assert.ok(readFileSync(join(root, 'etc/default/minio'), 'utf8').includes(`MINIO_ROOT_USER="${s3lab.S3_ACCESS_KEY}"`))
  assert.ok(readFileSync(join(root, 'etc/passwd'), 'utf8').includes('minio-user:'))
  // The real S3 is back, with every bucket versioned.
  assert.equal(await buckets(), ['backups', 'tfstate'])
  for (const b of ['backups', 'tfstate']) assert.is(await versioning(b), 'Enabled')
  assert.not.ok(r.output.includes(s3lab.S3_SECRET_KEY))
  assert.match(r.output, /✓ MinIO is back on http:\/\/127\.0\.0\.4:9000: buckets versioned, states present, Terraform reconnected\. Changed: CT 120 created; CT 120 started; MinIO installed in CT 120; bucket tfstate created; bucket backups created;/, show(r))
})

test('US3.2 the states are back from the local mirror with their serial and lineage; the report names each upload', async () => {
  assert.ok(scratch, 'the from-scratch rebuild ran')
  const files = readdirSync(reports).filter((f) => f.startsWith('rebuild-minio-'))
  assert.is(files.length, 1, files.join(', '))
  const doc = JSON.parse(readFileSync(join(reports, files[0]!), 'utf8')) as { facts: Record<string, { serial: number; lineage: string; file: string }> }
  for (const env of ENVS) {
    const now = await stateIn(env)
    assert.equal({ serial: now.serial, lineage: now.lineage }, before[env], env)
    const file = join(mirror, env, `${before[env]!.serial}.tfstate`)
    assert.ok(scratch!.output.split('\n').some((l) => l.startsWith(`✓ Push the state of ${env}: serial ${before[env]!.serial}, lineage ${before[env]!.lineage} → s3://tfstate/${env}/terraform.tfstate`)), `${env}\n${show(scratch!)}`)
    assert.equal({ ...doc.facts[`pushed:${env}`], versionId: undefined }, { serial: before[env]!.serial, lineage: before[env]!.lineage, file, versionId: undefined })
    assert.is(JSON.stringify(await stateIn(env)), JSON.stringify(JSON.parse(readFileSync(file, 'utf8'))))
  }
})

test('US3.3 terraform init and a state read work in every environment (a real terraform, fresh)', async () => {
  for (const env of ENVS) {
    const dir = join(tfDir, 'environments', env)
    rmSync(join(dir, '.terraform'), { recursive: true, force: true })
    const init = await terraform(dir, ['init', '-input=false'], { creds })
    assert.is(init.exitCode, 0, init.stderr)
    const list = await terraform(dir, ['state', 'list'], { creds })
    assert.is(list.exitCode, 0, list.stderr)
    assert.ok(list.stdout.trim().split('\n').length >= 1, `${env}: ${list.stdout}`)
  }
})

test('US3.1 after the rebuild, a second run finds MinIO healthy and changes nothing', async () => {
  clearCalls()
  const r = await rebuild([])
  assert.is(r.code, 0, show(r))
  assert.ok(r.output.includes('✓ MinIO is healthy'), show(r))
  assert.equal(writes(), [])
})

test('US3.1 from backup (the default when a vzdump of CT 120 exists): restored with the shared flow, S3 back, buckets versioned, states pushed', async () => {
  await destroyMinio()
  assert.not.ok(await s3lab.reachable())
  const r = await rebuild(['--push-state', '--yes'])
  assert.is(r.code, 0, show(r))
  assert.equal(writes(), [
    'pct restore 120 local:backup/vzdump-lxc-120-2026_11_25-03_00_02.tar.zst --storage local-lvm',
    'pct start 120',
  ])
  assert.match(readFileSync(CT_CONF, 'utf8'), /^hostname: minio$/m)
  assert.equal(await buckets(), ['backups', 'tfstate'])
  for (const b of ['backups', 'tfstate']) assert.is(await versioning(b), 'Enabled')
  for (const env of ENVS) {
    const now = await stateIn(env)
    assert.equal({ serial: now.serial, lineage: now.lineage }, before[env], env)
  }
  for (const env of ENVS) assert.match(r.output, new RegExp(`✓ ${env}: reconnected: terraform init \\+ state list`))
  assert.match(r.output, /✓ MinIO is back on http:\/\/127\.0\.0\.4:9000/)
})

test('EF-006 CT 120 runs but S3 is dead: a safety backup of the CT first, then the restore over it', async () => {
  await s3lab.stop(LAB_DIR)
  clearCalls()
  const r = await rebuild(['--push-state', '--yes'])
  assert.is(r.code, 0, show(r))
  const w = writes()
  assert.match(w[0]!, /^vzdump 120 --storage local --mode snapshot --compress zstd --notes-template /)
  assert.equal(w.slice(1), ['pct stop 120', 'pct restore 120 local:backup/vzdump-lxc-120-2026_11_25-03_00_02.tar.zst --force 1 --storage local-lvm', 'pct start 120'])
  assert.match(r.output, /Safety backup of the guest as it was: local:backup\/vzdump-lxc-120-\S+\.tar\.zst/)
  assert.equal(await buckets(), ['backups', 'tfstate'])
  for (const env of ENVS) assert.is((await stateIn(env)).serial, before[env]!.serial, env)
})

uvuTest.run()
