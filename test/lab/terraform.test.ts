// The fixture homelab's terraform runs against the lab S3 backend (real terraform, builtin terraform_data only).
//   node --import tsx test/lab/terraform.test.ts
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { execFile } from 'node:child_process'
import { rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { GetObjectCommand, HeadObjectCommand, ListObjectVersionsCommand } from '@aws-sdk/client-s3'
import * as s3lab from './s3.ts'

const labDir = s3lab.defaultLabDir()
const envDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'homelab', 'environments', 'prod')
const env = s3lab.terraformEnv(labDir, 'terraform-test-prod')
const s3 = s3lab.s3Client()

interface Result { code: number, stdout: string, stderr: string }
const terraform = (...args: string[]): Promise<Result> => new Promise(ok => {
  execFile('terraform', [`-chdir=${envDir}`, ...args, '-no-color'], { env, timeout: 50_000 }, (err, stdout, stderr) => {
    ok({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr })
  })
})
const show = (r: Result): string => `exit ${r.code}\n${r.stdout}\n${r.stderr}`

test.before(async () => {
  await s3lab.up(labDir)
  rmSync(env.TF_DATA_DIR ?? '', { recursive: true, force: true })
})
test.after(() => { s3.destroy() })

test('prod: init connects to the S3 backend, with no CLI config warning', async () => {
  const r = await terraform('init', '-input=false')
  assert.is(r.code, 0, show(r))
  assert.match(r.stdout, 'Successfully configured the backend "s3"')
  assert.not.match(r.stderr + r.stdout, 'CLI configuration')
})

test('prod: apply -auto-approve, then plan -detailed-exitcode finds no change (exit 0)', async () => {
  const a = await terraform('apply', '-auto-approve', '-input=false')
  assert.is(a.code, 0, show(a))
  const p = await terraform('plan', '-detailed-exitcode', '-input=false')
  assert.is(p.code, 0, show(p))
  assert.match(p.stdout, 'No changes.')
})

test('prod: the state object is in the bucket with serial and lineage; no .tflock remains', async () => {
  const obj = await s3.send(new GetObjectCommand({ Bucket: 'tfstate', Key: 'prod/terraform.tfstate' }))
  const state = JSON.parse(await obj.Body?.transformToString() ?? '{}') as {
    version?: number, serial?: number, lineage?: string, resources?: Array<{ type: string, name: string }>
  }
  assert.is(state.version, 4)
  assert.ok(typeof state.serial === 'number' && state.serial >= 1, `serial ${state.serial}`)
  assert.match(state.lineage ?? '', /^[0-9a-f-]{36}$/)
  assert.equal((state.resources ?? []).map(r => `${r.type}.${r.name}`).sort(), ['terraform_data.dns01', 'terraform_data.web01'])
  const lock = await s3.send(new HeadObjectCommand({ Bucket: 'tfstate', Key: 'prod/terraform.tfstate.tflock' })).then(() => 'present', (e: Error) => e.name)
  assert.is(lock, 'NotFound')
  // On a versioned bucket the lock leaves history: each run adds a lock version and a delete marker.
  const v = await s3.send(new ListObjectVersionsCommand({ Bucket: 'tfstate', Prefix: 'prod/terraform.tfstate.tflock' }))
  assert.ok((v.DeleteMarkers ?? []).some(m => m.IsLatest), 'the latest .tflock entry is a delete marker')
})

test.run()
