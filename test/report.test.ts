import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { readFileSync, statSync } from 'node:fs'
import { tempDir } from './tmp.ts'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Report } from '../lib/report.ts'
import { registerSecret } from '../lib/output.ts'
import { execute, type Plan } from '../lib/plan.ts'

function capture(fn: () => Promise<void> | void): Promise<string> {
  const write = process.stdout.write.bind(process.stdout)
  let out = ''
  process.stdout.write = ((chunk: string) => ((out += chunk), true)) as typeof process.stdout.write
  return Promise.resolve(fn()).then(
    () => ((process.stdout.write = write), out),
    (e) => {
      process.stdout.write = write
      throw e
    },
  )
}

test('EF-003 the report file records every step, is mode 0600 and carries no secret', async () => {
  const dir = tempDir('hdr-rep-')
  process.env.HDR_REPORTS_DIR = dir
  registerSecret('hunter2-secret')
  const r = new Report('restore:vm')
  const out = await capture(async () => {
    await r.step('Restore VM 101', async (d) => void d.push('archive local:backup/x.vma.zst'))
    await r.step('Check ping', async () => {
      throw new Error('no answer from 10.0.0.5 with key hunter2-secret')
    }).catch(() => {})
    r.finish({ exitCode: 5, summary: 'Restored, but verification failed.', next: ['Roll back: qmrestore local:backup/safety.vma.zst 101 --force 1'] })
  })
  assert.is(statSync(r.file!).mode & 0o777, 0o600)
  const doc = JSON.parse(readFileSync(r.file!, 'utf8'))
  assert.is(doc.exitCode, 5)
  assert.equal(doc.steps.map((s: { title: string; status: string }) => [s.title, s.status]), [['Restore VM 101', 'ok'], ['Check ping', 'failed']])
  assert.ok(!readFileSync(r.file!, 'utf8').includes('hunter2-secret'))
  assert.ok(out.includes('✗ Check ping: no answer from 10.0.0.5 with key ***\n'))
  assert.ok(out.includes('\nRestored, but verification failed.\n  Roll back: qmrestore local:backup/safety.vma.zst 101 --force 1\nReport: '))
})

test('EF-007 a dry run records mutating actions without running them; probes still run', async () => {
  process.env.HDR_REPORTS_DIR = tempDir('hdr-rep-')
  const ran: string[] = []
  const plan: Plan = {
    title: 'Plan',
    facts: [],
    warnings: [],
    actions: [
      { title: 'Read status', mutates: false, run: async () => void ran.push('status') },
      { title: 'Restore', command: 'qmrestore local:backup/x 101 --force 1', mutates: true, run: async () => void ran.push('restore') },
    ],
  }
  const r = new Report('restore:vm')
  const out = await capture(() => execute(plan, r, true))
  assert.equal(ran, ['status'])
  assert.ok(out.includes('[dry-run] Restore: qmrestore local:backup/x 101 --force 1\n'))
})

test('check(): details join the ✓ line; a failure is recorded once, printed only with showFailure', async () => {
  process.env.HDR_REPORTS_DIR = tempDir('hdr-rep-')
  const r = new Report('restore:vm')
  const out = await capture(async () => {
    await r.check('Backup storage active', async (d) => void d.push("'local'"))
    await r.check('Backups found', async () => {
      throw new Error('no backup of 102')
    }).catch(() => {})
    await r.check('10.0.0.5 answers ping', async () => {
      throw new Error('no answer after 3 attempts')
    }, { showFailure: true }).catch(() => {})
  })
  assert.is(out, "✓ Backup storage active: 'local'\n✗ 10.0.0.5 answers ping: no answer after 3 attempts\n")
  assert.equal(r.steps.map((s) => [s.title, s.status, s.details.at(-1)]), [
    ["Backup storage active: 'local'", 'ok', "'local'"],
    ['Backups found', 'failed', 'no backup of 102'],
    ['10.0.0.5 answers ping', 'failed', 'no answer after 3 attempts'],
  ])
})

test.run()
