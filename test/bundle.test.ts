// Each script ships as ONE file that runs with bare `node` on a machine with no node_modules.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { execFileSync, spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { gunzipSync } from 'node:zlib'
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { tempDir } from './tmp.ts'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import tasks from '../tasks.json' with { type: 'json' }
import pkg from '../package.json' with { type: 'json' }
import { createServer } from 'node:net'
import { readFileSync } from 'node:fs'
import { labEnv, labUp, FIXTURE, LAB_DIR } from './lab/lab.ts'
import { calls, lock, reset } from './lab/node.ts'
import * as s3lab from './lab/s3.ts'

const empty = tempDir('hdr-bundle-')

test.before(() => {
  execFileSync('npm', ['run', '-s', 'bundle'], { stdio: 'pipe' })
  for (const t of tasks.tasks) copyFileSync(`dist/${t.id.replace(':', '-')}.mjs`, join(empty, `${t.id.replace(':', '-')}.mjs`))
})

const run = (file: string, args: string[], env: NodeJS.ProcessEnv = {}) =>
  spawnSync(process.execPath, [join(empty, file), ...args], { cwd: empty, encoding: 'utf8', env: { PATH: process.env.PATH, HOME: empty, ...env } })

test('every bundle answers --help with bare node and no node_modules', () => {
  for (const t of tasks.tasks) {
    const r = run(`${t.id.replace(':', '-')}.mjs`, ['--help'])
    assert.is(r.status, 0, `${t.id}: ${r.stderr}`)
    assert.ok(r.stdout.startsWith(`${t.id} — `), t.id)
    assert.ok(r.stdout.includes('Exit codes:'), t.id)
  }
})

const engines = Number(/^>=\s*(\d+)/.exec(pkg.engines.node)![1])

test('bundles claim the Node.js they need (package.json engines): the banner refuses an older node, exit 4, one sentence', () => {
  assert.ok(engines >= 20, 'the AWS SDK v3 needs Node 20')
  assert.ok(Number(process.versions.node.split('.')[0]) >= engines, `the tests run on Node ${process.versions.node}, below engines ${pkg.engines.node}`)
  const older = `${engines - 2}.19.0`
  for (const t of tasks.tasks) {
    const file = `${t.id.replace(':', '-')}.mjs`
    assert.ok(readFileSync(join(empty, file), 'utf8').includes(`< ${engines}) {`), `${file} does not check Node ${engines}`)
    const r = spawnSync(process.execPath, ['--import', `data:text/javascript,Object.defineProperty(process.versions,"node",{value:"${older}"})`, join(empty, file), '--help'], { cwd: empty, encoding: 'utf8' })
    assert.is(r.status, 4, `${t.id}: ${r.stderr}`)
    assert.is(r.stderr.split('\n')[0], `✗ homelab-dr needs Node.js ${engines} or later; this is Node.js ${older}. Nothing was changed.`)
  }
})

test('the bundled S3 SDK runs on this node and its calls are bounded: verify:backups --states against a hung S3, exit 4', async () => {
  const server = createServer(() => {}) // accepts, never answers
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res))
  const port = (server.address() as { port: number }).port
  const repo = join(empty, 'hung')
  mkdirSync(join(repo, 'environments', 'prod'), { recursive: true })
  writeFileSync(join(repo, 'terraform.tfvars'), readFileSync(join(FIXTURE, 'terraform.tfvars'), 'utf8').replace(/minio_ip\s*=.*/, 'minio_ip = "127.0.0.1"').replace(/minio_port\s*=.*/, `minio_port = ${port}`))
  writeFileSync(join(repo, 'environments', 'prod', 'main.tf'), readFileSync(join(FIXTURE, 'environments', 'prod', 'main.tf'), 'utf8').replace('http://127.0.0.4:9000', `http://127.0.0.1:${port}`))
  const r = run('verify-backups.mjs', ['--no-files', '--states', '--tf-dir', repo], { HDR_REPORTS_DIR: join(empty, 'reports') })
  server.close()
  assert.is(r.status, 4, r.stderr)
  assert.match(r.stderr, new RegExp(`✗ MinIO at http://127\\.0\\.0\\.1:${port} did not answer in \\d+ s`))
})

test('the bundled HCL parser (inlined wasm) reads tfvars and reports file:line:col', () => {
  const repo = join(empty, 'homelab')
  mkdirSync(join(repo, 'environments', 'prod'), { recursive: true })
  writeFileSync(join(repo, 'terraform.tfvars'), 'proxmox_nodes = {\n  pve = { host = "127.0.0.2" port = 2222 }\n}\n')
  writeFileSync(join(repo, 'environments', 'prod', 'main.tf'), 'resource "terraform_data" "x" {}\n')
  const r = run('verify-backups.mjs', ['--dry-run', '--tf-dir', repo])
  assert.is(r.status, 4, r.stderr)
  assert.match(r.stderr, /^✗ Cannot parse terraform\.tfvars:2:\d+: Missing attribute separator/)
})

test('a bundle cut short or altered in the copy says so in one line (exit 4), not a stack trace', () => {
  const repo = join(empty, 'homelab-cut')
  mkdirSync(repo, { recursive: true })
  writeFileSync(join(repo, 'terraform.tfvars'), 'proxmox_nodes = { pve = { host = "127.0.0.2" } }\n')
  const text = readFileSync(join(empty, 'config.mjs'), 'latin1')
  const at = text.lastIndexOf('\n/*@hdr-payload:hcl-wasm:')
  const end = text.indexOf('*/', at) + 3
  writeFileSync(join(empty, 'config-cut.mjs'), text.slice(0, at) + text.slice(end), 'latin1')
  writeFileSync(join(empty, 'config-altered.mjs'), text.slice(0, end - 2000) + 'AAAA' + text.slice(end - 1996), 'latin1')
  for (const [file, how] of [['config-cut.mjs', 'missing'], ['config-altered.mjs', 'damaged']] as const) {
    // an empty cache: a cache written from an intact copy would stand in for the damaged part
    const r = run(file, ['--tf-dir', repo], { HDR_CACHE_DIR: tempDir('hdr-bundle-cache-') })
    assert.is(r.status, 4, r.stderr)
    assert.is(r.stderr, `✗ This file is incomplete: its hcl-wasm part is ${how} (cut short or altered when it was copied?).\n  Copy it again, or rebuild it with npm run bundle.\n`)
  }
})

test('a bundle keeps the parser\'s wasm decoded in the user cache: written once, read back, a bad entry replaced, an unusable cache harmless', () => {
  const repo = join(empty, 'homelab-cache')
  mkdirSync(repo, { recursive: true })
  writeFileSync(join(repo, 'terraform.tfvars'), 'proxmox_nodes = {\n  pve = { host = "127.0.0.2" port = 2222 }\n}\n')
  const wasm = gunzipSync(readFileSync('node_modules/@cdktf/hcl2json/main.wasm.gz'))
  const name = `${createHash('sha256').update(wasm).digest('hex').slice(0, 16)}-hcl-wasm`
  const parsed = (r: ReturnType<typeof run>) => { assert.is(r.status, 4, r.stderr); assert.match(r.stderr, /^✗ Cannot parse terraform\.tfvars:2:\d+: Missing attribute separator/) }
  // the default place: $XDG_CACHE_HOME/homelab-dr, else ~/.cache/homelab-dr
  const home = tempDir('hdr-bundle-home-')
  parsed(run('verify-backups.mjs', ['--dry-run', '--tf-dir', repo], { HOME: home }))
  assert.ok(readFileSync(join(home, '.cache', 'homelab-dr', name)).equals(wasm), 'the decoded wasm, byte for byte, in ~/.cache/homelab-dr')
  const cache = tempDir('hdr-bundle-cache-')
  parsed(run('verify-backups.mjs', ['--dry-run', '--tf-dir', repo], { XDG_CACHE_HOME: cache }))
  assert.ok(readFileSync(join(cache, 'homelab-dr', name)).equals(wasm))
  // an entry of the wrong size (cut short) is not used, and is written again
  writeFileSync(join(cache, 'homelab-dr', name), wasm.subarray(0, 1000))
  parsed(run('verify-backups.mjs', ['--dry-run', '--tf-dir', repo], { XDG_CACHE_HOME: cache }))
  assert.ok(readFileSync(join(cache, 'homelab-dr', name)).equals(wasm), 'the bad entry replaced')
  // a cache that cannot be made (a file where its folder would be): the run is the same
  writeFileSync(join(home, 'not-a-dir'), '')
  parsed(run('verify-backups.mjs', ['--dry-run', '--tf-dir', repo], { HDR_CACHE_DIR: join(home, 'not-a-dir', 'homelab-dr') }))
  assert.not.ok(existsSync(join(home, 'not-a-dir', 'homelab-dr')))
})

test('a bundle runs a real --dry-run against the lab node: the plan, and nothing changed', async () => {
  await lock(LAB_DIR)
  await labUp(['node'])
  await reset(LAB_DIR)
  const r = run('restore-vm.mjs', ['101', '--dry-run', '--tf-dir', FIXTURE], { HDR_SSH_CONFIG: labEnv().HDR_SSH_CONFIG, HDR_REPORTS_DIR: join(empty, 'reports') })
  assert.is(r.status, 0, r.stderr)
  assert.ok(r.stdout.includes('Restore VM 101 on node \'pve\' from the backup of 2026-11-25 03:00:02\n'), r.stdout)
  assert.ok(r.stdout.includes('[dry-run] Restore VM 101 from vzdump-qemu-101-2026_11_25-03_00_02.vma.zst and start it: qmrestore local:backup/vzdump-qemu-101-2026_11_25-03_00_02.vma.zst 101 --force 1 --start 1\n'))
  assert.ok(r.stdout.includes('Dry run: nothing was changed.'))
  const mutating = calls(LAB_DIR).filter((c) => ['qmrestore', 'vzdump'].includes(c.argv[0]?.split('/').at(-1) ?? '') || ['stop', 'start', 'restore'].includes(c.argv[1] ?? ''))
  assert.equal(mutating, [])
})

test('the bundled S3 SDK (embedded, compiled on first use) lists the state versions in the lab S3', async () => {
  await lock(LAB_DIR)
  await labUp(['node', 's3'])
  const key = 'prod/terraform.tfstate'
  const body = JSON.stringify({ version: 4, terraform_version: '1.11.4', serial: 7, lineage: 'bundle-test', outputs: {}, resources: [] })
  const put = await s3lab.s3Client().send(new PutObjectCommand({ Bucket: 'tfstate', Key: key, Body: body }))
  const r = run('restore-state.mjs', ['list', '--env', 'prod', '--tf-dir', FIXTURE, '--json'], {
    HDR_REPORTS_DIR: join(empty, 'reports'), AWS_ACCESS_KEY_ID: s3lab.S3_ACCESS_KEY, AWS_SECRET_ACCESS_KEY: s3lab.S3_SECRET_KEY,
  })
  // leave the bucket as it was: this version only, deleted by its id
  await s3lab.s3Client().send(new DeleteObjectCommand({ Bucket: 'tfstate', Key: key, VersionId: put.VersionId }))
  assert.is(r.status, 0, r.stderr)
  assert.ok(r.stdout.includes(put.VersionId!), r.stdout)
})

test.run()
