// A hung S3 (issue 12 item 1): a real loopback server that accepts TCP and never answers, or answers
// the headers and never sends the body. Every S3 call is bounded: the tasks say "MinIO at X did not
// answer in N s" in bounded time, exit 4, and restore:state offers (and runs) the fallback.
//   node --import tsx test/s3-hung.test.ts
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createServer, type Server, type Socket } from 'node:net'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawn, spawnSync } from 'node:child_process'
import { FIXTURE, labEnv, ROOT } from './lab/lab.ts'
import { runTask, scriptOf, type RunOutput } from './helpers.ts'
import { getText, listVersions, openS3, probe, S3TimeoutError, s3Error } from '../lib/s3.ts'

const sockets: Socket[] = []
/** 'silent': accepts and never writes. 'stall': answers any request with headers and 1 byte of body. */
function hungServer(mode: 'silent' | 'stall'): Promise<{ server: Server; port: number }> {
  const server = createServer((s) => {
    sockets.push(s)
    s.on('error', () => {})
    if (mode === 'stall') s.once('data', () => s.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\nContent-Type: application/json\r\n\r\n{'))
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as { port: number }).port })))
}

let silent: { server: Server; port: number }
let stall: { server: Server; port: number }
const tfDir = mkdtempSync(join(tmpdir(), 'hdr-s3hung my homelab-')) // a space: hints must quote paths
const stateDir = join(tfDir, 'mirror')
const endpoint = () => `http://127.0.0.1:${silent.port}`

test.before(async () => {
  silent = await hungServer('silent')
  stall = await hungServer('stall')
  // The fixture homelab with MinIO (tfvars and the backend block) pointed at the silent server.
  const vars = readFileSync(join(FIXTURE, 'terraform.tfvars'), 'utf8')
  writeFileSync(join(tfDir, 'terraform.tfvars'), vars.replace(/minio_ip\s*=.*/, 'minio_ip = "127.0.0.1"').replace(/minio_port\s*=.*/, `minio_port = ${silent.port}`))
  cpSync(join(FIXTURE, 'environments', 'prod'), join(tfDir, 'environments', 'prod'), { recursive: true })
  const main = join(tfDir, 'environments', 'prod', 'main.tf')
  writeFileSync(main, readFileSync(main, 'utf8').replace('http://127.0.0.4:9000', endpoint()))
})
test.after(() => {
  for (const s of sockets) s.destroy()
  silent.server.close()
  stall.server.close()
  rmSync(tfDir, { recursive: true, force: true })
})

const runEnv = { HOMELAB_TF_DIR: tfDir, HDR_STATE_DIR: stateDir, HDR_REPORTS_DIR: join(tfDir, 'reports'), AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '' }
const run = (task: string, args: string[]): Promise<RunOutput> => runTask(task, args, { env: runEnv, timeoutMs: 60_000 })
const realTerraform = spawnSync('sh', ['-c', 'command -v terraform'], { encoding: 'utf8' }).stdout.trim()
const show = (r: RunOutput) => `exit ${r.code}\n${r.output}`
const s3At = (port: number, callTimeoutMs = 1500) => openS3({ endpoint: `http://127.0.0.1:${port}`, accessKey: 'a', secretKey: 'secret-key', timeoutMs: 500, callTimeoutMs })

test('lib/s3: a server that accepts and never answers: probe says unreachable within the call deadline', async () => {
  const s3 = await s3At(silent.port)
  const t0 = Date.now()
  assert.is(await probe(s3, 'tfstate'), 'unreachable')
  const ms = Date.now() - t0
  assert.ok(ms < 5000, `probe took ${ms} ms`)
  s3.close()
})

test('lib/s3: a hung listing becomes "MinIO at X did not answer in N s", exit 4, fallback offered', async () => {
  const s3 = await s3At(silent.port)
  const e = await listVersions(s3, 'tfstate', 'k').then(() => undefined, (x: unknown) => x)
  assert.instance(e, S3TimeoutError)
  const d = s3Error(e, s3, 'listing')
  assert.is(d.exitCode, 4)
  assert.match(d.message, new RegExp(`^MinIO at http://127\\.0\\.0\\.1:${silent.port} did not answer in \\d+ s \\(listing\\)\\.$`))
  assert.match(d.hint ?? '', /restore:state fallback/)
  s3.close()
})

test('lib/s3: headers then a body that never ends: the read is bounded too (the per-call deadline)', async () => {
  const s3 = await s3At(stall.port, 2000)
  const t0 = Date.now()
  const e = await getText(s3, 'tfstate', 'k').then(() => undefined, (x: unknown) => x)
  assert.instance(e, S3TimeoutError, String(e))
  assert.ok(Date.now() - t0 < 4000, `took ${Date.now() - t0} ms`)
  s3.close()
})

test('EC-12.1 restore:state list against a hung MinIO: exit 4 in bounded time, the sentence, fallback offered', async () => {
  const t0 = Date.now()
  const r = await run('restore:state', ['list', '--env', 'prod'])
  const s = (Date.now() - t0) / 1000
  assert.is(r.code, 4, show(r))
  assert.ok(s < 20, `took ${s} s`)
  assert.match(r.output, new RegExp(`✗ MinIO at ${endpoint().replace(/\./g, '\\.')} did not answer in \\d+ s\\.`), show(r))
  assert.match(r.output, /npm run restore:state -- fallback --env prod/)
})

test('EC-12.7 restore checks terraform in its preflight: without it, exit 4 before anything', async () => {
  const r = await runTask('restore:state', ['restore', '--env', 'prod', '--version', 'x', '--yes'], { env: { ...runEnv, PATH: join(tfDir, 'no-bin') }, timeoutMs: 60_000 })
  assert.is(r.code, 4, show(r))
  assert.ok(r.output.includes('✗ terraform is not installed or not on PATH.'), show(r))
})

test('EC-12.1 restore:state fallback against a hung MinIO: the probe is bounded and the fallback runs (state lost: imports.tf)', async () => {
  const r = await run('restore:state', ['fallback', '--env', 'prod', '--yes'])
  assert.is(r.code, 4, show(r))
  assert.match(r.output, new RegExp(`The Terraform state of 'prod' is lost: MinIO at ${endpoint().replace(/\./g, '\\.')} did not answer in \\d+ s and there is no local copy`))
  assert.ok(existsSync(join(stateDir, 'prod', 'imports.tf')), show(r))
})

test('EC-12.6 SIGTERM during fallback\'s terraform init: tells what was done, removes the override again, exit 3; fallback then works', async () => {
  mkdirSync(join(stateDir, 'prod'), { recursive: true })
  writeFileSync(join(stateDir, 'prod', '7.tfstate'), JSON.stringify({ version: 4, terraform_version: '1.11.0', serial: 7, lineage: 'hung-test-lineage', outputs: {}, resources: [] }))
  // A slow `terraform init` (the real terraform, 20 s late), so the signal lands inside it.
  const shim = join(tfDir, 'slow-bin')
  mkdirSync(shim)
  writeFileSync(join(shim, 'terraform'), `#!/bin/sh\n[ "$1" = init ] && sleep 20\nexec ${JSON.stringify(realTerraform)} "$@"\n`, { mode: 0o755 })
  const env = { ...runEnv, PATH: `${shim}:${process.env.PATH}` }
  const child = spawn(process.execPath, ['--import', 'tsx', scriptOf('restore:state'), 'fallback', '--env', 'prod', '--yes'], { cwd: ROOT, env: labEnv(env) })
  let out = ''
  const onData = (d: Buffer) => {
    out += d
    if (out.includes('✓ Write backend_override.tf')) setTimeout(() => child.kill('SIGTERM'), 300)
  }
  child.stdout.on('data', onData)
  child.stderr.on('data', onData)
  const code = await new Promise<number>((res) => child.on('close', (c) => res(c ?? -1)))
  assert.is(code, 3, out)
  assert.ok(out.includes("✗ Interrupted by SIGTERM during 'terraform init -reconfigure'"), out)
  assert.match(out, /✗ Aborted! Done before the interruption: Put the local copy in place \(.*\); Write backend_override\.tf \(backend "local"\)\. Started and not finished: terraform init -reconfigure\./)
  assert.ok(out.includes(`! Removed ${join(tfDir, 'environments', 'prod', 'backend_override.tf')} again: 'prod' still uses S3`), out)
  assert.not.ok(out.includes('Nothing had been changed yet'), out)
  assert.not.ok(existsSync(join(tfDir, 'environments', 'prod', 'backend_override.tf')))
})

test('EC-12.1 restore:state fallback against a hung MinIO with a local copy: switches to it (exit 0)', async () => {
  const r = await run('restore:state', ['fallback', '--env', 'prod', '--yes'])
  assert.is(r.code, 0, show(r))
  assert.match(r.output, new RegExp(`Fall back to a local backend for 'prod' \\(MinIO at ${endpoint().replace(/\./g, '\\.')} did not answer in \\d+ s\\)`))
  assert.match(r.output, /✓ 'prod' now uses the local state .*serial 7 \(lineage hung-test-lineage\)/)
  // EC-12.10 the command shown can be pasted into a shell as is: the path with a space is quoted
  assert.ok(r.output.includes(`       terraform -chdir='${join(tfDir, 'environments', 'prod')}' init -reconfigure -input=false\n`), show(r))
  assert.ok(existsSync(join(tfDir, 'environments', 'prod', 'backend_override.tf')))
})

test('EC-12.1 verify:backups --states against a hung MinIO: exit 4 in bounded time with the sentence', async () => {
  const t0 = Date.now()
  const r = await run('verify:backups', ['--no-files', '--states'])
  assert.is(r.code, 4, show(r))
  assert.ok((Date.now() - t0) / 1000 < 40, 'bounded')
  assert.match(r.stderr, new RegExp(`✗ MinIO at ${endpoint().replace(/\./g, '\\.')} did not answer in \\d+ s \\(listing the workspaces of tfstate/env:/\\)\\.`))
})

test.run()
