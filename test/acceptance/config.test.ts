// The config doctor (EF-005) and per-environment endpoints (issue 11.5) against the lab: the fixture
// test/fixtures/endpoints has two environments on two endpoints, 'right' on the lab's S3 and 'wrong'
// on an address where nothing listens; each task must reach each environment's own endpoint.
//   npm test -- acceptance/config
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { cpSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DeleteObjectCommand, ListObjectVersionsCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { labUp, FIXTURE } from '../lab/lab.ts'
import * as s3lab from '../lab/s3.ts'
import { runTask, type RunOutput } from '../helpers.ts'

const ENDPOINTS = join(FIXTURE, '..', 'endpoints')
const RIGHT_KEY = 'endpoints-fixture/right.tfstate'
const BLUE_KEY = `env:/blue/${RIGHT_KEY}` // workspace blue, Terraform's S3 layout
const stateDir = mkdtempSync(join(tmpdir(), 'hdr-config-accept-'))
const s3 = s3lab.s3Client()
const show = (r: RunOutput) => `exit ${r.code}\n${r.output}`
const run = (task: string, args: string[], env: NodeJS.ProcessEnv = {}) =>
  runTask(task, args, { env: { HDR_STATE_DIR: stateDir, AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '', ...env } })

const STATE = JSON.stringify({ version: 4, terraform_version: '1.11.4', serial: 7, lineage: '0e4c1d2a-1111-2222-3333-444455556666', outputs: {}, resources: [] })
let version = ''
let blue = ''

test.before(async () => {
  await labUp(['s3'])
  const r = await s3.send(new PutObjectCommand({ Bucket: 'tfstate', Key: RIGHT_KEY, Body: STATE, ContentType: 'application/json' }))
  version = r.VersionId ?? ''
  const b = await s3.send(new PutObjectCommand({ Bucket: 'tfstate', Key: BLUE_KEY, Body: STATE.replace('"serial":7', '"serial":3'), ContentType: 'application/json' }))
  blue = b.VersionId ?? ''
})
test.after(async () => {
  for (const key of [RIGHT_KEY, BLUE_KEY]) {
  const v = await s3.send(new ListObjectVersionsCommand({ Bucket: 'tfstate', Prefix: key }))
  for (const x of [...(v.Versions ?? []), ...(v.DeleteMarkers ?? [])]) await s3.send(new DeleteObjectCommand({ Bucket: 'tfstate', Key: x.Key!, VersionId: x.VersionId }))
  }
  s3.destroy()
  rmSync(stateDir, { recursive: true, force: true })
})

test('EF-005 restore:state list --env X reaches X\'s own endpoint: the right one answers, the wrong one is named', async () => {
  const right = await run('restore:state', ['list', '--env', 'right', '--tf-dir', ENDPOINTS])
  assert.is(right.code, 0, show(right))
  assert.ok(right.stdout.includes(`State versions of 'right' (s3://tfstate/${RIGHT_KEY}), newest first, dates in UTC:`), show(right))
  assert.ok(right.stdout.includes(`* ${version}`), show(right))
  const wrong = await run('restore:state', ['list', '--env', 'wrong', '--tf-dir', ENDPOINTS])
  assert.is(wrong.code, 4, show(wrong))
  assert.ok(wrong.output.includes('✗ S3 at http://127.0.0.9:9000 does not answer.'), show(wrong))
  assert.not.ok(wrong.output.includes('127.0.0.4'), show(wrong)) // never another environment's endpoint
})

test('EF-005 workspaces: list names the other workspaces in S3, and --workspace reaches env:/<w>/<key>', async () => {
  const r = await run('restore:state', ['list', '--env', 'right', '--tf-dir', ENDPOINTS])
  assert.ok(r.stdout.includes("Other workspaces of 'right' in S3: blue (list one with --workspace NAME)."), show(r))
  const b = await run('restore:state', ['list', '--env', 'right', '--workspace', 'blue', '--tf-dir', ENDPOINTS])
  assert.is(b.code, 0, show(b))
  assert.ok(b.stdout.includes(`State versions of 'right' (s3://tfstate/${BLUE_KEY}), newest first, dates in UTC:`), show(b))
  assert.ok(b.stdout.includes(`* ${blue}`), show(b))
})

test('EF-005 verify:backups --states checks every workspace of an environment, on its own endpoint', async () => {
  const repo = mkdtempSync(join(tmpdir(), 'hdr-config-ws-'))
  try {
    cpSync(join(ENDPOINTS, 'terraform.tfvars'), join(repo, 'terraform.tfvars'))
    cpSync(join(ENDPOINTS, 'environments', 'right'), join(repo, 'environments', 'right'), { recursive: true })
    const r = await run('verify:backups', ['--states', '--no-files', '--tf-dir', repo])
    assert.is(r.code, 0, show(r))
    assert.ok(r.stdout.includes(`✓ state right version ${version} (`), show(r))
    assert.ok(r.stdout.includes(`✓ state right/blue version ${blue} (`), show(r))
    assert.ok(/serial 3\n/.test(r.stdout.slice(r.stdout.indexOf('right/blue'))), show(r))
  } finally {
    rmSync(repo, { recursive: true, force: true })
  }
})

test('EF-005 a plain AWS backend is not sent to MinIO: without AWS credentials restore:state says what to add', async () => {
  const r = await run('restore:state', ['list', '--env', 'cloud', '--tf-dir', ENDPOINTS])
  assert.is(r.code, 4, show(r))
  assert.ok(r.output.includes("✗ No S3 credentials for 'cloud' (AWS S3 (eu-central-1)): AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not set."), show(r))
  assert.ok(r.output.includes('  Add to .env: AWS_ACCESS_KEY_ID=<access key> and AWS_SECRET_ACCESS_KEY=<secret key>'), show(r))
})

test('EF-005 npm run config: the lab fixture has everything every task needs (exit 0), with file:line for values', async () => {
  const r = await run('config', ['--tf-dir', FIXTURE])
  assert.is(r.code, 0, show(r))
  assert.ok(r.stdout.includes('Proxmox node (from terraform.tfvars:3):\n  pve  root@127.0.0.2:2222\n'), show(r))
  assert.ok(/^ {2}minio_ip +127\.0\.0\.4 +terraform\.tfvars:8$/m.test(r.stdout), show(r))
  assert.ok(/^ {4}endpoint +http:\/\/127\.0\.0\.4:9000 +environments\/prod\/main\.tf:9$/m.test(r.stdout), show(r))
  assert.ok(r.stdout.endsWith('✓ Every task has what it needs.\n'), show(r))
})

test('EF-005 npm run config:check: each gap with the task that needs it and the .env line (exit 4)', async () => {
  const r = await run('config', ['--check', '--tf-dir', join(FIXTURE, '..', 'minio-nas')])
  assert.is(r.code, 4, show(r))
  assert.ok(r.stdout.includes('  ✗ rebuild:monitoring  No monitoring VM: monitoring_vmid is not set.\n'), show(r))
  assert.ok(r.stdout.includes('  - rebuild:minio       MinIO is not a Proxmox container here (no minio_ctid): the container rebuild does not apply\n'), show(r))
  assert.ok(r.stdout.includes(`Add to .env (${join(FIXTURE, '..', 'minio-nas')}/.env), with your values:\n  HDR_MONITORING_VMID=<VM id>\n  HDR_MONITORING_IP=<address>\n`), show(r))
  assert.not.ok(r.stdout.includes('Environments ('), show(r)) // --check: only the gaps
})

test.run()
