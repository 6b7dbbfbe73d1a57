// restore:state races (issue 12 items 7 and 17), against the lab's real versioned S3: an apply or a
// terraform lock landing while the operator reads the plan is never superseded, and a second run on
// one environment is refused naming the run that holds it.
//   node --import tsx test/acceptance/restore-state-races.test.ts
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn, spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { dirname, join } from 'node:path'
import { DeleteObjectCommand, GetObjectCommand, ListObjectVersionsCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { labEnv, labUp, FIXTURE, ROOT } from '../lab/lab.ts'
import * as s3lab from '../lab/s3.ts'
import { runTask, scriptOf } from '../helpers.ts'
import { overrideText } from '../../lib/terraform.ts'
import { tempDir } from '../tmp.ts'

const KEY = `restore-state-races/${process.pid}-${Date.now()}/terraform.tfstate`
const tfDir = tempDir('hdr-races-')
const lockDir = join(tfDir, 'locks')
const s3 = s3lab.s3Client()
const stateText = (serial: number, names: string[]) => JSON.stringify({ version: 4, terraform_version: '1.11.4', serial, lineage: 'races-lineage', outputs: {}, resources: names.map((name) => ({ mode: 'managed', type: 'terraform_data', name, provider: 'provider["terraform.io/builtin/terraform"]', instances: [{ attributes: { id: name } }] })) })
const put = async (Key: string, Body: string) => (await s3.send(new PutObjectCommand({ Bucket: 'tfstate', Key, Body }))).VersionId!
async function ids(): Promise<string[]> {
  const r = await s3.send(new ListObjectVersionsCommand({ Bucket: 'tfstate', Prefix: KEY }))
  return (r.Versions ?? []).filter((v) => v.Key === KEY).sort((a, b) => b.LastModified!.getTime() - a.LastModified!.getTime()).map((v) => v.VersionId!)
}
const current = async () => (await (await s3.send(new GetObjectCommand({ Bucket: 'tfstate', Key: KEY }))).Body!.transformToString())

let v1: string
test.before(async () => {
  await labUp(['node', 's3'])
  cpSync(join(FIXTURE, 'terraform.tfvars'), join(tfDir, 'terraform.tfvars'))
  cpSync(join(FIXTURE, 'environments', 'prod'), join(tfDir, 'environments', 'races'), { recursive: true })
  const main = join(tfDir, 'environments', 'races', 'main.tf')
  writeFileSync(main, readFileSync(main, 'utf8').replace('"prod/terraform.tfstate"', JSON.stringify(KEY)))
  v1 = await put(KEY, stateText(1, ['web01']))
  await put(KEY, stateText(2, ['web01', 'db01']))
})
test.after(() => s3.destroy())

const env = { HOMELAB_TF_DIR: tfDir, HDR_STATE_DIR: join(tfDir, 'mirror'), HDR_LOCK_DIR: lockDir, HDR_REPORTS_DIR: join(tfDir, 'reports'), AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '' }

/** restore on a terminal; when the prompt shows, `meanwhile` runs (another client), then the answer is yes. */
function restoreWith(meanwhile: () => Promise<void>): Promise<{ code: number; out: string }> {
  const argv = [process.execPath, '--import', 'tsx', scriptOf('restore:state'), 'restore', '--env', 'races', '--version', v1]
  const line = argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ')
  const child = spawn('script', ['-qefc', line, '/dev/null'], { cwd: ROOT, env: labEnv(env) })
  let out = ''
  let asked = false
  const onData = (d: Buffer) => {
    out += d
    if (!asked && out.includes('[y/N]')) {
      asked = true
      void meanwhile().then(() => child.stdin.write('y\n'))
    }
  }
  child.stdout.on('data', onData)
  child.stderr.on('data', onData)
  const kill = setTimeout(() => child.kill('SIGKILL'), 120_000)
  return new Promise((resolve) => child.on('close', (code) => (clearTimeout(kill), resolve({ code: code ?? -1, out: out.replace(/\r\n/g, '\n') }))))
}

test('EC-12.7 an apply landing while the plan is shown: the restore refuses, the new version stays current (exit 4)', async () => {
  let applied = ''
  const r = await restoreWith(async () => { applied = await put(KEY, stateText(3, ['web01', 'db01', 'dns01'])) })
  assert.is(r.code, 4, r.out)
  assert.match(r.out, new RegExp(`✗ The state changed while the plan was shown: the current version of s3://tfstate/${KEY.replace(/[.]/g, '\\.')} is now ${applied}, not \\S+\\. S3 was not written\\.`))
  assert.is((await ids())[0], applied)
  assert.is(JSON.parse(await current()).serial, 3)
})

test('EC-12.7 a terraform lock taken while the plan is shown: the restore refuses and writes nothing (exit 4)', async () => {
  const before = await ids()
  const r = await restoreWith(async () => void (await put(`${KEY}.tflock`, '{"ID":"x","Operation":"OperationTypeApply"}')))
  await s3.send(new DeleteObjectCommand({ Bucket: 'tfstate', Key: `${KEY}.tflock` }))
  assert.is(r.code, 4, r.out)
  assert.match(r.out, /✗ The state was locked while the plan was shown: s3:\/\/tfstate\/\S+\.tflock exists \(a terraform run started\)\. S3 was not written\./)
  assert.equal(await ids(), before)
})

test('EC-17 a second run on one environment is refused, naming the run that holds it (exit 4), nothing written', async () => {
  const before = await ids()
  // The first run: this test process holds the environment's lock (a live pid on this host).
  mkdirSync(lockDir, { recursive: true })
  writeFileSync(join(lockDir, 'env-races.lock'), JSON.stringify({ task: 'restore:state', pid: process.pid, host: hostname(), started: '2026-12-02T03:00:00.000Z', command: 'restore --env races --version X' }))
  const r = await restoreWith(async () => {})
  assert.is(r.code, 4, r.out)
  assert.ok(r.out.includes(`✗ Another homelab-dr run is working on environment 'races': restore:state (pid ${process.pid} on ${hostname()}, started 2026-12-02T03:00:00.000Z: restore --env races --version X). Nothing was changed.`), r.out)
  assert.ok(r.out.includes(`Wait for it to finish. If that run is gone (its machine rebooted), remove the lock: rm '${join(lockDir, 'env-races.lock')}'`), r.out)
  assert.equal(await ids(), before)
  assert.equal(readdirSync(lockDir), ['env-races.lock']) // the holder's lock is left alone
  rmSync(join(lockDir, 'env-races.lock'))
})

// ---- return, interrupted (issue 12 item 6) ----

const envDir = () => join(tfDir, 'environments', 'races')
const override = () => join(envDir(), 'backend_override.tf')
/** 'races' on its local fallback backend, with a local state newer than S3's (serial 10). */
function onFallback(): void {
  const local = join(tfDir, 'mirror', 'races', 'fallback', 'terraform.tfstate')
  mkdirSync(dirname(local), { recursive: true })
  writeFileSync(local, stateText(10, ['web01', 'db01', 'dns01']))
  writeFileSync(override(), overrideText('races', { path: local }))
}
/** `return --yes` with a `terraform init` that hangs 20 s; `signal` once the override is renamed. */
function returnInterrupted(signal: NodeJS.Signals): Promise<{ code: number; out: string }> {
  const shim = join(tfDir, 'slow-bin')
  mkdirSync(shim, { recursive: true })
  const real = spawnSync('sh', ['-c', 'command -v terraform'], { encoding: 'utf8' }).stdout.trim()
  // init never really runs here: a shim outliving a killed run must not migrate behind the next one
  writeFileSync(join(shim, 'terraform'), `#!/bin/sh\nif [ "$1" = init ]; then sleep 20; exit 1; fi\nexec ${JSON.stringify(real)} "$@"\n`, { mode: 0o755 })
  const child = spawn(process.execPath, ['--import', 'tsx', scriptOf('restore:state'), 'return', '--env', 'races', '--yes'], { cwd: ROOT, env: labEnv({ ...env, PATH: `${shim}:${process.env.PATH}` }) })
  let out = ''
  let sent = false
  const onData = (d: Buffer) => {
    out += d
    if (!sent && out.includes('✓ Remove backend_override.tf')) {
      sent = true
      setTimeout(() => child.kill(signal), 300)
    }
  }
  child.stdout.on('data', onData)
  child.stderr.on('data', onData)
  const kill = setTimeout(() => child.kill('SIGKILL'), 120_000)
  return new Promise((resolve) => child.on('close', (code, sig) => (clearTimeout(kill), resolve({ code: code ?? (sig === 'SIGKILL' ? 137 : -1), out }))))
}

test('EC-12.6 SIGTERM during return\'s terraform init: the override is put back, what was done is told, exit 3', async () => {
  onFallback()
  const r = await returnInterrupted('SIGTERM')
  assert.is(r.code, 3, r.out)
  assert.ok(r.out.includes("✗ Interrupted by SIGTERM during 'terraform init -migrate-state -force-copy'"), r.out)
  assert.ok(r.out.includes(`! Put ${override()} back: 'races' stays on its local state; run return again`), r.out)
  assert.match(r.out, /✗ Aborted! Done before the interruption: Keep the local state in the mirror; Save the state S3 holds now to the mirror; Write the local state to s3:\/\/tfstate\/\S+ \(serial 10, lineage races-lineage\); Remove backend_override\.tf\. Started and not finished: terraform init -migrate-state -force-copy\./)
  assert.not.ok(r.out.includes('Nothing had been changed yet'), r.out)
  assert.ok(existsSync(override()))
  assert.not.ok(existsSync(`${override()}.returned`))
})

test('EC-12.6 a return killed (SIGKILL) mid-way: the next return puts the override back and completes (exit 0)', async () => {
  const killed = await returnInterrupted('SIGKILL')
  assert.is(killed.code, 137, killed.out)
  assert.ok(existsSync(`${override()}.returned`))
  assert.not.ok(existsSync(override()))
  const r = await runTask('restore:state', ['return', '--env', 'races', '--yes'], { env, timeoutMs: 180_000 })
  assert.is(r.code, 0, r.output)
  assert.ok(r.output.includes(`! An interrupted return left ${override()}.returned: put it back, 'races' is on its local state`), r.output)
  assert.match(r.output, /✓ 'races' is back on S3 \(s3:\/\/tfstate\/\S+\) with serial 10, lineage races-lineage\./)
  assert.is(JSON.parse(await current()).serial, 10)
  assert.not.ok(existsSync(override()))
})

test.run()
