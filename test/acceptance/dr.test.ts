// dr against the lab (US6.1–US6.3): the guided recovery runs the real tasks in-process, skips what is
// healthy, stops on a failed step and resumes from it. Asserted on the node's call log, the bucket,
// the run file and the report (Markdown with its gantt chart, JSON with the same timings).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import { ListObjectVersionsCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { runTask, type RunOpts } from '../helpers.ts'
import { FIXTURE, LAB_DIR, labUp } from '../lab/lab.ts'
import * as node from '../lab/node.ts'
import { s3Client, terraformEnv } from '../lab/s3.ts'
import { commandLine } from '../../lib/ssh.ts'
import { drSteps } from '../../lib/dr.ts'

const NOW = '2026-11-25T12:00:00' // the backups' day, so they are fresh for dr:check (HDR_NOW)
const STATE_KEY = `dr-test/${randomUUID()}/terraform.tfstate`
const PVE = join(LAB_DIR, 'pve')

/** A copy of the fixture homelab with one environment (prod) whose state lives under this test's own key. */
function homelab(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hdr-dr-tf-'))
  cpSync(FIXTURE, dir, { recursive: true, filter: (p) => !p.includes('.terraform') && !/\.tfstate/.test(p) })
  for (const e of ['lab', 'minio', 'monitoring']) rmSync(join(dir, 'environments', e), { recursive: true, force: true })
  const main = join(dir, 'environments', 'prod', 'main.tf')
  writeFileSync(main, readFileSync(main, 'utf8').replace(/key\s*=\s*"[^"]*"/, `key = "${STATE_KEY}"`))
  return dir
}
const TF = homelab()
const TMP = mkdtempSync(join(tmpdir(), 'hdr-dr-'))
let reports = ''
const dr = (args: string[], opts: RunOpts = {}) =>
  runTask('dr', args, { timeoutMs: 240_000, ...opts, env: { HOMELAB_TF_DIR: TF, HDR_NOW: NOW, HDR_REPORTS_DIR: reports, HDR_STATE_DIR: join(TMP, 'state'), HDR_BOOT_TIMEOUT: '15', ...opts.env } })
const onNode = (...argv: string[]) => {
  const r = spawnSync('ssh', [...node.sshArgs(LAB_DIR), 'pve', commandLine(argv)], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`)
}
const calls = () => node.calls(LAB_DIR).map((c) => c.argv.join(' '))
const WRITES = /^(vzdump|qmrestore|pct restore|pct create|qm (start|stop|shutdown|destroy)|pct (start|stop|shutdown|destroy))\b/
const writes = () => calls().filter((c) => WRITES.test(c))
const stepLines = (out: string) => out.split('\n').filter((l) => /^Step \d\/5 — /.test(l))

/** The fixture node without VM 102 (a guest with no backup at all), prod's state applied, a fresh reports folder. */
async function healthyLab(): Promise<void> {
  await node.reset(LAB_DIR)
  onNode('qm', 'destroy', '102')
  for (const args of [['init', '-input=false', '-reconfigure'], ['apply', '-auto-approve', '-input=false']]) {
    const r = spawnSync('terraform', [`-chdir=${join(TF, 'environments', 'prod')}`, ...args], { env: { ...terraformEnv(LAB_DIR, 'dr'), TF_DATA_DIR: undefined }, encoding: 'utf8' })
    if (r.status !== 0) throw new Error(`terraform ${args[0]}: ${r.stderr}`)
  }
  rmSync(join(PVE, 'calls.log'), { force: true })
  reports = mkdtempSync(join(TMP, 'reports-'))
}

test.before(async () => {
  await labUp()
})
test.after(() => {
  rmSync(TF, { recursive: true, force: true })
  rmSync(TMP, { recursive: true, force: true })
})

test('US6.1 US6.2 dr --dry-run: every step with what it does, prerequisites, verification and target, real facts; nothing changed', async () => {
  await healthyLab()
  const r = await dr(['--dry-run'])
  assert.equal(stepLines(r.stdout), [
    'Step 1/5 — MinIO (rebuild:minio)', 'Step 2/5 — Terraform state (restore:state)', 'Step 3/5 — Monitoring (rebuild:monitoring)',
    'Step 4/5 — Production guests (restore:vm)', 'Step 5/5 — Final check (dr:check)',
  ])
  assert.match(r.stdout, "[dry-run] Disaster recovery of node 'pve': 5 steps, target 1:00:00 (CS-007).\nGuests of step 4: 101, 110.\n")
  const minio = drSteps()[0]!
  assert.match(r.stdout, `  Prerequisites: ${minio.prerequisites.join('; ')}\n  Verification:  ${minio.verification}\n  Target:        10:00 (CS-003)\n`)
  assert.match(r.stdout, '  ✓ state prod: serial 1, lineage kept, terraform init works\n  - Already healthy: skipped')
  assert.match(r.stdout, '  Target:        10:00 (CS-001: 5:00 per guest)\n  ✓ VM 101 (web01): running, 10.251.0.101 answers ping and SSH')
  assert.match(r.stdout, '[dry-run] npm run dr:check -- --dry-run')
  assert.match(r.stdout, '[dry-run] Nothing was changed: the plan above shows each step with the real facts.')
  assert.is(r.code, 0)
  assert.equal(writes(), [])
  assert.not.ok(existsSync(join(reports, 'dr-run.json')), 'a dry run writes no run file')
})

test('US6.3 dr --yes on a healthy lab changes nothing: each step verified and skipped, dr:check proves it; report with gantt + JSON timings', async () => {
  await healthyLab()
  const r = await dr(['--yes'])
  assert.is(r.code, 0, r.output)
  assert.equal(writes(), [], 'no write on the node')
  assert.equal(r.stdout.split('\n').filter((l) => l.startsWith('  - Already healthy: skipped')).length, 4)
  assert.match(r.stdout, '✓ The lab is healthy: 22 checks passed in')
  assert.match(r.stdout, /✓ The lab is back and proven by dr:check: 0 steps run, 4 already healthy, in 0:\d\d of 1:00:00 \(CS-007\) within target\./)
  const files = readdirSync(reports)
  const md = files.find((f) => /^dr-.*\.md$/.test(f))!
  const json = JSON.parse(readFileSync(join(reports, md.replace(/\.md$/, '.json')), 'utf8')) as { facts: { timings: Array<{ title: string; status: string; seconds: number; targetSeconds?: number }> } }
  assert.equal(json.facts.timings.map((t) => `${t.title} ${t.status} ${t.targetSeconds ?? '-'}`), [
    'MinIO healthy 600', 'Terraform state healthy 120', 'Monitoring healthy 900', 'Production guests healthy 600', 'Final check done -',
  ])
  const text = readFileSync(join(reports, md), 'utf8')
  assert.match(text, '```mermaid\ngantt\n')
  const start = Number(/  MinIO 0m0\ds healthy :done, s1, (\d+), \d+\n/.exec(text)?.[1])
  assert.ok(start <= 5, text)
  assert.match(text, `  MinIO target CS-003 :t1, ${start}, ${start + 600}\n`)
  assert.match(text, '  Whole recovery CS-007 :milestone, total, 3600, 3600\n')
  const run = JSON.parse(readFileSync(join(reports, 'dr-run.json'), 'utf8')) as { finished: boolean }
  assert.is(run.finished, true)
})

test('US6.1 a destroyed guest: step 4 restores it with restore:vm run in-process, verified, then dr:check passes', async () => {
  await healthyLab()
  onNode('pct', 'stop', '110')
  onNode('pct', 'destroy', '110')
  rmSync(join(PVE, 'calls.log'), { force: true })
  const r = await dr(['--yes'])
  assert.is(r.code, 0, r.output)
  assert.match(r.stdout, '  ✗ guest 110: missing on the node (restore it: npm run restore:vm -- 110)\n  Commands:\n    npm run restore:vm -- 110\nRun step 4 (Production guests)? yes (--yes)\n  → npm run restore:vm -- 110\n')
  assert.match(r.stdout, '✓ CT 110 (dns01) restored from vzdump-lxc-110-2026_11_25-03_00_02.tar.zst, running and reachable (ping + SSH).')
  assert.match(r.stdout, /  ✓ CT 110 \(dns01\): running, 10\.251\.0\.110 answers ping and SSH \(hostname dns01\)\n  ✓ Step 4 done and verified \(0:\d\d of 10:00 \(CS-001\) within target\)\./)
  assert.ok(writes().some((w) => w.startsWith('pct restore 110 ')), writes().join('\n'))
  assert.ok(writes().every((w) => / 110\b/.test(w)), `only CT 110 was touched: ${writes().join('; ')}`)
})

test('dr: a damaged state stops the run at step 2 with what to do next; --resume --state-version re-checks step 2 only and finishes', async () => {
  await healthyLab()
  const s3 = s3Client()
  const versions = await s3.send(new ListObjectVersionsCommand({ Bucket: 'tfstate', Prefix: STATE_KEY }))
  const good = versions.Versions?.find((v) => v.IsLatest)?.VersionId
  const before = versions.Versions?.filter((v) => v.Key === STATE_KEY).length ?? 0
  assert.ok(good)
  await s3.send(new PutObjectCommand({ Bucket: 'tfstate', Key: STATE_KEY, Body: '{"truncated": ' }))
  const first = await dr(['--yes'])
  assert.is(first.code, 1)
  assert.match(first.stdout, "  ✗ state prod: tfstate/" + STATE_KEY + ": not JSON")
  assert.match(first.stdout, `✗ Step 2 (Terraform state) cannot run: the state of 'prod' is not healthy and no version was picked. List its versions (npm run restore:state -- list --env prod), then: npm run dr -- --resume --state-version prod=<ID> Nothing after it was run.\n  Read the step's report above, fix what it names, then continue: npm run dr -- --resume\n`)
  assert.equal(stepLines(first.stdout), ['Step 1/5 — MinIO (rebuild:minio)', 'Step 2/5 — Terraform state (restore:state)'])

  const second = await dr(['--yes', '--resume', '--state-version', `prod=${good}`])
  assert.is(second.code, 0, second.output)
  assert.match(second.stdout, /Resuming the run of .*: steps 1 done, continuing at step 2 \(re-checked first\)\./)
  assert.equal(stepLines(second.stdout), ['Step 2/5 — Terraform state (restore:state)', 'Step 3/5 — Monitoring (rebuild:monitoring)', 'Step 4/5 — Production guests (restore:vm)', 'Step 5/5 — Final check (dr:check)'])
  assert.match(second.stdout, `  → npm run restore:state -- restore --env prod --version ${good}\n`)
  assert.match(second.stdout, /  ✓ state prod: serial \d+, lineage kept, terraform init works\n  ✓ Step 2 done and verified/)
  const after = await s3.send(new ListObjectVersionsCommand({ Bucket: 'tfstate', Prefix: STATE_KEY }))
  assert.is(after.Versions?.filter((v) => v.Key === STATE_KEY).length, before + 2, 'rolled forward: the good content is a new current version, the damaged one kept')
  const md = readdirSync(reports).filter((f) => /^dr-.*\.md$/.test(f)).sort().at(-1)!
  assert.match(readFileSync(join(reports, md), 'utf8'), /  Terraform state 0m\d\ds done :done, s2, \d+, \d+\n/)
  s3.destroy()
})

test('dr: usage errors before any I/O; --resume with no run to resume', async () => {
  reports = mkdtempSync(join(TMP, 'reports-'))
  const a = await dr(['--only', '101;reboot'])
  assert.is(a.code, 2)
  assert.is(a.stderr, '✗ Invalid --only "101;reboot": a comma-separated list of VMIDs, e.g. 101,110.\n')
  const b = await dr(['--resume'])
  assert.is(b.code, 2)
  assert.is(b.stderr, `✗ No dr run to resume (${join(reports, 'dr-run.json')} does not exist).\n  Start one with: npm run dr\n`)
  const c = await dr(['--state-version', 'prod'])
  assert.is(c.code, 2)
  assert.is(c.stderr, '✗ Invalid --state-version "prod": ENV=VERSION_ID, e.g. prod=3fA1b2.\n')
})

test.run()
