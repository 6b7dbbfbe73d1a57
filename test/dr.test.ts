// lib/dr.ts: the steps from tasks.json, the runbook (and that docs/disaster-recovery.md is current),
// the order of the guests, the run file's resume point, the stopwatch and the gantt chart.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { drSteps, gantt, guestOrder, newRun, parseIdList, readRun, resumeIndex, runbook, saveRun, stopwatchLine, targetSeconds } from '../lib/dr.ts'
import { RUNBOOK_FILE } from '../tools/runbook.ts'
import { runTask } from './helpers.ts'

test('US6.1 the steps, from tasks.json drOrder: MinIO, Terraform state, monitoring, production guests, then dr:check', () => {
  assert.equal(drSteps().map((s) => `${s.n} ${s.title} (${s.task})`), [
    '1 MinIO (rebuild:minio)', '2 Terraform state (restore:state)', '3 Monitoring (rebuild:monitoring)', '4 Production guests (restore:vm)', '5 Final check (dr:check)',
  ])
})

test('US6.2 every step of the runbook states its prerequisites, the command to type and the expected verification', () => {
  const text = runbook()
  for (const s of drSteps()) {
    const section = text.slice(text.indexOf(`## ${s.n}. `), text.indexOf(`## ${s.n + 1}. `) > 0 ? text.indexOf(`## ${s.n + 1}. `) : undefined)
    assert.ok(section.includes(`- **Prerequisites:** ${s.prerequisites.join('; ')}.`), `${s.task} prerequisites`)
    assert.ok(section.includes(`- **Expected verification:** ${s.verification}.`), `${s.task} verification`)
    assert.ok(section.includes('```sh\n' + s.commands.join('\n') + '\n```'), `${s.task} commands`)
  }
  assert.match(text, '- **Target:** 5:00 (CS-001: 5:00 per guest).')
  assert.match(text, 'Whole recovery: under 1:00:00 (CS-007).')
})

test('docs/disaster-recovery.md is the runbook generated from tasks.json (else: npm run runbook)', () => {
  assert.is(readFileSync(RUNBOOK_FILE, 'utf8'), runbook(), 'docs/disaster-recovery.md is out of date: run npm run runbook')
})

test('US6.2 dr --print prints that runbook and runs nothing (no config, no node needed)', async () => {
  const r = await runTask('dr', ['--print'], { env: { HOMELAB_TF_DIR: '/nonexistent', HDR_SSH_CONFIG: '/nonexistent' } })
  assert.is(r.code, 0)
  assert.is(r.stdout, readFileSync(RUNBOOK_FILE, 'utf8'))
  assert.is(r.stderr, '')
})

test('the guests of step 4: dr_order first, then by VMID; the steps\' own guests excluded; --only and --skip', () => {
  const covered = [101, 102, 110, 120, 200]
  assert.equal(guestOrder({ covered, drOrder: [], exclude: [120, 200] }), [101, 102, 110])
  assert.equal(guestOrder({ covered, drOrder: [110, 105], exclude: [120, 200] }), [110, 105, 101, 102])
  assert.equal(guestOrder({ covered, drOrder: [110], exclude: [120, 200], only: [101, 110] }), [110, 101])
  assert.equal(guestOrder({ covered, drOrder: [], exclude: [120, 200], skip: [102] }), [101, 110])
  assert.equal(parseIdList('101, 110', '--only'), [101, 110])
  assert.throws(() => parseIdList('101;rm', '--only'), /Invalid --only "101;rm": a comma-separated list of VMIDs, e\.g\. 101,110\./)
})

test('targets: CS-002 per environment and CS-001 per guest scale with their number', () => {
  const [minio, state, , guests, check] = drSteps()
  assert.is(targetSeconds(minio!.target, 3), 600)
  assert.is(targetSeconds(state!.target, 3), 360)
  assert.is(targetSeconds(guests!.target, 2), 600)
  assert.is(targetSeconds(check!.target, 1), undefined)
  assert.is(stopwatchLine(42, 600, 'CS-003'), '0:42 of 10:00 (CS-003) within target')
  assert.is(stopwatchLine(700, 600, 'CS-003'), '11:40 of 10:00 (CS-003) OVER TARGET')
})

test('the run file: saved 0600 in the reports folder; a resumed run continues at the first step not done or healthy', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hdr-dr-run-'))
  try {
    const file = join(dir, 'dr-run.json')
    const run = newRun(drSteps(), new Date('2026-12-01T03:00:00Z'))
    assert.is(resumeIndex(run), 0)
    run.steps[0]!.status = 'done'
    run.steps[1]!.status = 'healthy'
    run.steps[2]!.status = 'running'
    saveRun(run, file)
    assert.is(statSync(file).mode & 0o777, 0o600)
    assert.is(resumeIndex(readRun(file)!), 2, 'the interrupted step 3 is re-checked first')
    run.steps.forEach((s) => (s.status = 'done'))
    assert.is(resumeIndex(run), 5)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('the gantt chart: each step as it ran, its CS target from the same start, the CS-007 milestone', () => {
  const run = newRun(drSteps(), new Date('2026-12-01T03:00:00Z'))
  Object.assign(run.steps[0]!, { status: 'done', start: 0, seconds: 42.4, targetSeconds: 600 })
  Object.assign(run.steps[1]!, { status: 'healthy', start: 42.4, seconds: 3, targetSeconds: 240 })
  Object.assign(run.steps[2]!, { status: 'failed', start: 45.4, seconds: 100, targetSeconds: 900 })
  assert.is(gantt(run, 145.4), [
    '```mermaid',
    'gantt',
    '  title dr run of 2026-12-01 03:00 UTC — 2:25 of 1:00:00 (CS-007)',
    '  dateFormat X',
    '  axisFormat %H h %M m %S s',
    '  section Steps as they ran',
    '  MinIO 0m42s done :done, s1, 0, 42',
    '  Terraform state 0m03s healthy :done, s2, 42, 45',
    '  Monitoring 1m40s failed :crit, s3, 45, 145',
    '  section Targets',
    '  MinIO target CS-003 :t1, 0, 600',
    '  Terraform state target CS-002 :t2, 42, 282',
    '  Monitoring target CS-004 :t3, 45, 945',
    '  Whole recovery CS-007 :milestone, total, 3600, 3600',
    '  Run finished :milestone, end, 145, 145',
    '```',
  ].join('\n'))
})

test.run()
