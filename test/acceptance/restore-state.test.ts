// restore:state (US2) against the lab: real versioned S3 (really stopped and restarted for fallback and
// return) and real terraform on a copy of the fixture's prod environment, under a state key of its own.
//   node --import tsx test/acceptance/restore-state.test.ts
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DeleteObjectCommand, GetObjectCommand, ListObjectVersionsCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { labUp, FIXTURE, LAB_DIR } from '../lab/lab.ts'
import * as s3lab from '../lab/s3.ts'
import { runTask, type RunOutput } from '../helpers.ts'
import { terraform } from '../../lib/terraform.ts'

const RUN = `${process.pid}-${Date.now()}`
const KEY = `restore-state-test/${RUN}/terraform.tfstate`
const LOST_KEY = `restore-state-test/${RUN}/lost.tfstate`
const OTHER_KEY = `env:/other/${KEY}` // --workspace other
const tfDir = mkdtempSync(join(tmpdir(), 'hdr-restore-state-'))
const envDir = join(tfDir, 'environments', 'statetest')
const stateDir = join(tfDir, 'mirror')
const s3 = s3lab.s3Client()
const creds = { accessKey: s3lab.S3_ACCESS_KEY, secretKey: s3lab.S3_SECRET_KEY }

const run = (args: string[], env: NodeJS.ProcessEnv = {}, opts: { tty?: boolean; answers?: Array<[string, string]> } = {}): Promise<RunOutput> =>
  runTask('restore:state', args, { env: { HOMELAB_TF_DIR: tfDir, HDR_STATE_DIR: stateDir, AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '', ...env }, ...opts })
const show = (r: RunOutput) => `exit ${r.code}\n${r.output}`
const lines = (r: RunOutput) => r.output.split('\n')

interface V { id: string; date: Date; latest: boolean; marker: boolean }
async function versions(key = KEY): Promise<V[]> {
  const r = await s3.send(new ListObjectVersionsCommand({ Bucket: 'tfstate', Prefix: key }))
  return [
    ...(r.Versions ?? []).filter((v) => v.Key === key).map((v) => ({ id: v.VersionId!, date: v.LastModified!, latest: v.IsLatest === true, marker: false })),
    ...(r.DeleteMarkers ?? []).filter((v) => v.Key === key).map((v) => ({ id: v.VersionId!, date: v.LastModified!, latest: v.IsLatest === true, marker: true })),
  ].sort((a, b) => Number(b.latest) - Number(a.latest) || b.date.getTime() - a.date.getTime())
}
async function body(key = KEY, VersionId?: string): Promise<string> {
  return (await (await s3.send(new GetObjectCommand({ Bucket: 'tfstate', Key: key, VersionId }))).Body?.transformToString()) ?? ''
}
const state = (text: string) => JSON.parse(text) as { serial: number; lineage: string; resources: Array<{ name: string }> }
const names = (text: string) => state(text).resources.map((r) => r.name).sort()
async function tf(...args: string[]): Promise<string> {
  const r = await terraform(envDir, args, { creds })
  if (r.exitCode !== 0) throw new Error(`terraform ${args.join(' ')}: ${r.stderr}${r.stdout}`)
  return r.stdout
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

// v1: web01 dns01 (serial 1) · v2: + db01 (serial 2) · v3: db01 destroyed (serial 3); a second apart.
let v1: V, v2: V, v3: V

test.before(async () => {
  await labUp(['node', 's3'])
  cpSync(join(FIXTURE, 'terraform.tfvars'), join(tfDir, 'terraform.tfvars'))
  for (const [name, key] of [['statetest', KEY], ['statelost', LOST_KEY]] as const) {
    cpSync(join(FIXTURE, 'environments', 'prod'), join(tfDir, 'environments', name), { recursive: true })
    const main = join(tfDir, 'environments', name, 'main.tf')
    writeFileSync(main, readFileSync(main, 'utf8').replace('"prod/terraform.tfstate"', JSON.stringify(key)))
  }
  await tf('init', '-input=false')
  await tf('apply', '-auto-approve', '-input=false')
  await sleep(1100)
  writeFileSync(join(envDir, 'db01.tf'), 'resource "terraform_data" "db01" {\n  input = "db01"\n}\n')
  await tf('apply', '-auto-approve', '-input=false')
  await sleep(1100)
  rmSync(join(envDir, 'db01.tf'))
  await tf('apply', '-auto-approve', '-input=false')
  ;[v3, v2, v1] = (await versions()) as [V, V, V]
})
test.after(async () => {
  await s3lab.start(LAB_DIR).catch(() => {})
  s3.destroy()
  rmSync(tfDir, { recursive: true, force: true })
})

test('US2.1 list: every version newest first with date, size, serial, lineage, terraform version, resources; current marked', async () => {
  const r = await run(['list', '--env', 'statetest'])
  assert.is(r.code, 0, show(r))
  const lineage = state(await body()).lineage
  const out = lines(r)
  const head = out.indexOf(`State versions of 'statetest' (s3://tfstate/${KEY}), newest first, dates in UTC:`)
  assert.ok(head >= 0, show(r))
  assert.match(out[head + 1]!, /^ {4}VERSION ID +DATE +SIZE +SERIAL +LINEAGE +TERRAFORM +RESOURCES$/)
  const iso = (d: Date) => d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z')
  const expect = [[v3, 3, 2, 'current'], [v2, 2, 3, ''], [v1, 1, 2, '']] as const
  for (const [i, [v, serial, count, note]] of expect.entries()) {
    const size = Buffer.byteLength(await body(KEY, v.id))
    const re = new RegExp(`^  ${i === 0 ? '\\*' : ' '} ${v.id} +${iso(v.date)} +${size} B +${serial}  ${lineage.slice(0, 8)}  1\\.11\\.\\d+ +${count}${note ? `  ${note}` : ''}$`)
    assert.match(out[head + 2 + i]!, re)
  }
  assert.ok(out.includes("3 versions of 'statetest' state (current: serial 3)."), show(r))
  assert.ok(out.includes('  To make one current again: npm run restore:state -- restore --env statetest --version <VERSION ID>'))
  // Side effect: the current state is mirrored locally.
  assert.is(readFileSync(join(stateDir, 'statetest', '3.tfstate'), 'utf8'), await body())
})

test('US2.1 list flags a lineage change, an invalid version and a delete marker (workspace other)', async () => {
  const a = JSON.stringify({ version: 4, terraform_version: '1.11.4', serial: 4, lineage: 'aaaaaaaa-1111-2222-3333-444444444444', outputs: {}, resources: [] })
  const b = JSON.stringify({ version: 4, terraform_version: '1.11.4', serial: 1, lineage: 'bbbbbbbb-1111-2222-3333-444444444444', outputs: {}, resources: [] })
  for (const Body of [a, b, '{"version": 4, "serial": ']) {
    await s3.send(new PutObjectCommand({ Bucket: 'tfstate', Key: OTHER_KEY, Body }))
    await sleep(20)
  }
  await s3.send(new DeleteObjectCommand({ Bucket: 'tfstate', Key: OTHER_KEY }))
  const r = await run(['list', '--env', 'statetest', '--workspace', 'other'])
  assert.is(r.code, 0, show(r))
  const rows = lines(r).filter((l) => /^ {2}[* ] \S/.test(l) && !l.includes('VERSION ID'))
  assert.is(rows.length, 4, show(r))
  assert.match(rows[0]!, /^  \* \S+ +\S+ \S+ +- +- +- +- +-  delete marker \(current\)$/)
  assert.match(rows[1]!, /  not valid state: not JSON \(/)
  assert.match(rows[2]!, / 1  bbbbbbbb  1\.11\.4 +0  lineage changed$/)
  assert.match(rows[3]!, / 4  aaaaaaaa  1\.11\.4 +0$/)
  assert.ok(lines(r).includes("3 versions of 'statetest' state (the latest entry is a delete marker: no current state)."), show(r))
})

test('EF-007 restore --dry-run shows the changes and the actions, and changes nothing', async () => {
  const before = await versions()
  const r = await run(['restore', '--env', 'statetest', '--version', v2.id, '--dry-run'])
  assert.is(r.code, 0, show(r))
  const out = lines(r)
  for (const l of [
    'Changes to the state (current → restored):',
    '  + terraform_data.db01  (back in the state)',
    '  serial: 3 now; the restored copy is serial 2, written as 4',
    `[dry-run] Write version ${v2.id} as the new current version (serial 4, lineage ${state(await body()).lineage}): PUT s3://tfstate/${KEY}`,
    `[dry-run] terraform plan: terraform -chdir=${envDir} plan -detailed-exitcode`,
    '[dry-run] Dry run: nothing was changed (no local copy, no write to S3, no terraform).',
  ]) assert.ok(out.includes(l), `missing: ${l}\n${show(r)}`)
  assert.equal(await versions(), before)
  assert.not.ok(existsSync(join(stateDir, 'statetest', '4.tfstate')))
})

test('US2.2 restore refuses without a terminal or --yes, and changes nothing', async () => {
  const before = await versions()
  const r = await run(['restore', '--env', 'statetest', '--version', v2.id])
  assert.is(r.code, 3, show(r))
  assert.ok(lines(r).includes('✗ Refusing to continue without confirmation: there is no terminal to ask on.'), show(r))
  assert.equal(await versions(), before)
})

let restored: RunOutput
test('US2.2 restore --version: the old content becomes current, serial above, lineage kept, history kept; terraform plan reports', async () => {
  const lineage = state(await body()).lineage
  // EF-002: asked on a terminal, answered yes.
  restored = await run(['restore', '--env', 'statetest', '--version', v2.id], {}, { tty: true, answers: [['[y/N]', 'y\n']] })
  assert.is(restored.code, 0, show(restored))
  const after = await versions()
  assert.is(after.length, 4)
  assert.equal(after.slice(1).map((v) => v.id), [v3.id, v2.id, v1.id]) // nothing deleted
  const now = await body()
  assert.is(state(now).serial, 4)
  assert.is(state(now).lineage, lineage)
  assert.equal(names(now), ['db01', 'dns01', 'web01'])
  const out = lines(restored)
  assert.ok(out.includes(`✓ Restored 'statetest': version ${v2.id} (serial 2) is current again as serial 4 (version ${after[0]!.id}). terraform plan: Plan: 0 to add, 0 to change, 1 to destroy.`), show(restored))
  assert.ok(out.includes('! terraform plan: Plan: 0 to add, 0 to change, 1 to destroy.: review these before the next apply'), show(restored))
  assert.ok(out.includes(`  To undo: npm run restore:state -- restore --env statetest --version ${v3.id}`))
  const report = JSON.parse(readFileSync(/^Report: (.+)$/m.exec(restored.output)![1]!, 'utf8')) as { facts: { plan: { changes: string[] } } }
  assert.equal(report.facts.plan.changes, ['terraform_data.db01 will be destroyed'])
})

test('EF-006 restore saved the replaced state locally first (mode 0600) and named it in the report', async () => {
  const file = join(stateDir, 'statetest', '3.tfstate')
  assert.is(readFileSync(file, 'utf8'), await body(KEY, v3.id))
  assert.is(statSync(file).mode & 0o777, 0o600)
  assert.ok(lines(restored).includes(`  Safety copy of the previous state (serial 3): ${file}`), show(restored))
  const report = JSON.parse(readFileSync(/^Report: (.+)$/m.exec(restored.output)![1]!, 'utf8')) as { facts: { safetyCopy: string; s3Requests: number } }
  assert.is(report.facts.safetyCopy, file)
  assert.ok(report.facts.s3Requests > 0)
})

test('US2.2 restore --at: the last version at or before that time; plan shows no changes', async () => {
  const at = v1.date.toISOString().replace(/\.\d+Z$/, 'Z')
  const r = await run(['restore', '--env', 'statetest', '--at', at, '--yes'])
  assert.is(r.code, 0, show(r))
  assert.ok(lines(r).some((l) => l.startsWith(`✓ Restored 'statetest': version ${v1.id} (serial 1) is current again as serial 5 `) && l.endsWith('terraform plan: No changes.')), show(r))
  assert.equal(names(await body()), ['dns01', 'web01'])
})

test('US2.2 restore refuses while <key>.tflock exists, unless --force', async () => {
  await s3.send(new PutObjectCommand({ Bucket: 'tfstate', Key: `${KEY}.tflock`, Body: '{"ID":"x"}' }))
  const before = await versions()
  const r = await run(['restore', '--env', 'statetest', '--version', v3.id, '--yes'])
  assert.is(r.code, 4, show(r))
  assert.ok(lines(r).includes(`✗ The state is locked: s3://tfstate/${KEY}.tflock exists (a terraform run is in progress, or one crashed).`), show(r))
  assert.equal(await versions(), before)
  const d = await run(['restore', '--env', 'statetest', '--version', v3.id, '--force', '--dry-run'])
  assert.is(d.code, 0, show(d))
  assert.ok(lines(d).includes(`! Lock s3://tfstate/${KEY}.tflock exists: ignored because of --force`), show(d))
  await s3.send(new DeleteObjectCommand({ Bucket: 'tfstate', Key: `${KEY}.tflock` }))
})

test('US2.2 bad input changes nothing: unknown env, foreign version, invalid state, --at too early or unreadable, wrong credentials', async () => {
  const before = await versions()
  const other = (await versions(OTHER_KEY)).find((v) => !v.marker)!
  const invalid = (await versions(OTHER_KEY)).filter((v) => !v.marker)[0]!
  const cases: Array<[string[], NodeJS.ProcessEnv, number, string]> = [
    [['restore', '--env', 'nope', '--version', v1.id, '--yes'], {}, 2, "✗ Unknown environment 'nope'. Known: statelost, statetest"],
    [['restore', '--env', 'statetest', '--version', other.id, '--yes'], {}, 2, `✗ Version ${other.id} is not a version of s3://tfstate/${KEY}.`],
    [['restore', '--env', 'statetest', '--workspace', 'other', '--version', invalid.id, '--yes'], {}, 4, `✗ Version ${invalid.id} of s3://tfstate/${OTHER_KEY} is not a valid Terraform state (not JSON (`],
    [['restore', '--env', 'statetest', '--at', '2001-01-01T00:00Z', '--yes'], {}, 2, `✗ --at 2001-01-01 00:00:59Z is before the first version of s3://tfstate/${KEY} (`],
    [['restore', '--env', 'statetest', '--at', 'yesterday', '--yes'], {}, 2, '✗ Cannot read --at "yesterday": use YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] or an ISO time with Z.'],
    [['restore', '--env', 'statetest', '--version', v1.id, '--at', '2026-01-01', '--yes'], {}, 2, '✗ Give either --version or --at, not both.'],
    [['list', '--env', 'statetest'], { AWS_ACCESS_KEY_ID: 'hdrlabaccess', AWS_SECRET_ACCESS_KEY: 'wrong-secret-0123456789' }, 4, '✗ S3 at http://127.0.0.4:9000 refused the credentials (AccessDenied) while checking bucket tfstate.'],
  ]
  for (const [args, env, code, first] of cases) {
    const r = await run(args, env)
    assert.is(r.code, code, `${args.join(' ')}\n${show(r)}`)
    assert.ok(lines(r).some((l) => l.startsWith(first)), `${args.join(' ')}: expected a line starting ${first}\n${show(r)}`)
    assert.not.match(r.output, 'wrong-secret-0123456789')
    assert.not.match(r.output, s3lab.S3_SECRET_KEY)
  }
  assert.equal(await versions(), before)
})

test('US2.3 fallback refuses while S3 answers', async () => {
  const r = await run(['fallback', '--env', 'statetest', '--yes'])
  assert.is(r.code, 4, show(r))
  assert.ok(lines(r).includes('✗ S3 at http://127.0.0.4:9000 answers: there is nothing to fall back from.'), show(r))
  assert.not.ok(existsSync(join(envDir, 'backend_override.tf')))
})

let localSerial = 0
test('US2.3 fallback with S3 stopped: local backend with the newest local copy, terraform works', async () => {
  const current = state(await body())
  await run(['snapshot']) // the cron job: mirrors the current serial
  await s3lab.stop(LAB_DIR)
  const r = await run(['fallback', '--env', 'statetest', '--yes'])
  assert.is(r.code, 0, show(r))
  const local = join(stateDir, 'statetest', 'fallback', 'terraform.tfstate')
  const mtime = statSync(join(stateDir, 'statetest', `${current.serial}.tfstate`)).mtime.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z')
  assert.ok(lines(r).includes(`✓ 'statetest' now uses the local state ${local}: serial ${current.serial} (lineage ${current.lineage}), the copy saved ${mtime}.`), show(r))
  assert.ok(readFileSync(join(envDir, 'backend_override.tf'), 'utf8').includes(`backend "local" {\n    path = ${JSON.stringify(local)}\n  }`))
  assert.is(state(readFileSync(local, 'utf8')).serial, current.serial)
  // The operator works during the outage: terraform writes the local state.
  await tf('apply', '-auto-approve', '-input=false', '-replace=terraform_data.web01')
  localSerial = state(readFileSync(local, 'utf8')).serial
  assert.ok(localSerial > current.serial, `local serial ${localSerial}`)
})

test('EC-5 S3 down and no local copy: the state is lost, an imports.tf skeleton is written', async () => {
  const r = await run(['fallback', '--env', 'statelost', '--yes'])
  assert.is(r.code, 4, show(r))
  const file = join(stateDir, 'statelost', 'imports.tf')
  assert.ok(lines(r).includes(`✗ The Terraform state of 'statelost' is lost: S3 at http://127.0.0.4:9000 does not answer and there is no local copy in ${join(stateDir, 'statelost')}.`), show(r))
  assert.ok(lines(r).includes(`  Wrote ${file}: one import block for each of the 2 resources in ${join(tfDir, 'environments', 'statelost')}, ids left for you to fill.`), show(r))
  const text = readFileSync(file, 'utf8')
  assert.ok(text.includes('import {\n  to = terraform_data.dns01\n  id = "" # TODO: the real id of this resource\n}'))
  assert.ok(text.includes('import {\n  to = terraform_data.web01\n'))
  assert.not.ok(existsSync(join(tfDir, 'environments', 'statelost', 'backend_override.tf')))
})

test('US2.4 return refuses while S3 is down, then stops when S3 holds a newer serial', async () => {
  const down = await run(['return', '--env', 'statetest', '--yes'])
  assert.is(down.code, 4, show(down))
  assert.ok(lines(down).includes('✗ S3 at http://127.0.0.4:9000 does not answer.'), show(down))
  await s3lab.start(LAB_DIR)
  // Someone wrote to S3 meanwhile (a newer serial).
  const newer = JSON.stringify({ ...state(await body()), serial: localSerial + 5 }, null, 2)
  const put = await s3.send(new PutObjectCommand({ Bucket: 'tfstate', Key: KEY, Body: newer }))
  assert.is(state(await body()).serial, localSerial + 5)
  const r = await run(['return', '--env', 'statetest', '--yes'])
  assert.is(r.code, 4, show(r))
  assert.ok(lines(r).includes(`✗ S3 holds a newer state than the local one: serial ${localSerial + 5} in s3://tfstate/${KEY}, serial ${localSerial} locally. Something wrote to S3 during the fallback; returning would overwrite it, so nothing was changed.`), show(r))
  assert.ok(existsSync(join(envDir, 'backend_override.tf')))
  // Take that write back for the next test (test setup only; the tool never deletes versions).
  const id = put.VersionId ?? (await versions())[0]!.id
  await s3.send(new DeleteObjectCommand({ Bucket: 'tfstate', Key: KEY, VersionId: id }))
})

test('US2.4 return: override removed, S3 holds the local serial and lineage, the local copy is kept', async () => {
  const local = join(stateDir, 'statetest', 'fallback', 'terraform.tfstate')
  const lineage = state(readFileSync(local, 'utf8')).lineage
  const r = await run(['return', '--env', 'statetest', '--yes'])
  assert.is(r.code, 0, show(r))
  assert.ok(lines(r).includes(`✓ 'statetest' is back on S3 (s3://tfstate/${KEY}) with serial ${localSerial}, lineage ${lineage}.`), show(r))
  assert.ok(lines(r).includes(`  The local copy stays as a backup: ${local}`))
  assert.not.ok(existsSync(join(envDir, 'backend_override.tf')))
  const now = state(await body())
  assert.is(now.serial, localSerial)
  assert.is(now.lineage, lineage)
  assert.ok(existsSync(local))
  assert.match(await tf('plan', '-input=false'), 'No changes.')
})

test('snapshot mirrors every environment (mode 0600) and skips one without state', async () => {
  const r = await run(['snapshot'])
  assert.is(r.code, 0, show(r))
  const file = join(stateDir, 'statetest', `${localSerial}.tfstate`)
  assert.ok(lines(r).includes(`- statelost: no state in s3://tfstate/${LOST_KEY} yet`), show(r))
  assert.ok(lines(r).some((l) => l.startsWith(`✓ statetest: serial ${localSerial} → ${file}`)), show(r))
  assert.ok(lines(r).includes(`Done: 1 mirrored, 0 failed (mirror: ${stateDir}).`), show(r))
  assert.is(statSync(file).mode & 0o777, 0o600)
})

test.run()
