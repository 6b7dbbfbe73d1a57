// tasks.json, package.json scripts and scripts/*.ts must agree: one task = one file = one npm script.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { readdirSync, readFileSync } from 'node:fs'
import tasks from '../tasks.json' with { type: 'json' }
import pkg from '../package.json' with { type: 'json' }
import { runTask } from './helpers.ts'

const scripts = pkg.scripts as Record<string, string>
const ids = tasks.tasks.map((t) => t.id)

test('the seven tasks and the config doctor are registered', () => {
  assert.equal(ids, ['restore:vm', 'restore:state', 'rebuild:minio', 'rebuild:monitoring', 'verify:backups', 'dr', 'dr:check', 'config'])
})

test('every task has its npm script running its script file, and its fields', () => {
  for (const t of tasks.tasks) {
    assert.is(scripts[t.id], `node --import tsx ${t.script}`, t.id)
    assert.ok(/^(US[1-6]|EF-\d{3})$/.test(t.story), `${t.id} story`)
    assert.type(t.destructive, 'boolean')
    assert.ok(t.summary.length > 10 && t.summary.endsWith('.'), `${t.id} summary`)
    assert.ok(Array.isArray(t.prerequisites) && t.prerequisites.length > 0, `${t.id} prerequisites`)
    assert.ok(t.verification.length > 0, `${t.id} verification`)
    const src = readFileSync(t.script, 'utf8')
    assert.ok(src.includes(`id: '${t.id}'`), `${t.script} declares id '${t.id}'`)
  }
})

test('every file in scripts/ is a registered task', () => {
  const files = readdirSync('scripts').filter((f) => f.endsWith('.ts')).map((f) => `scripts/${f}`).sort()
  assert.equal(files, tasks.tasks.map((t) => t.script).sort())
})

test('the DR order is MinIO, state, monitoring, production VMs, then the check (US6.1)', () => {
  const ordered = tasks.tasks.filter((t) => t.drOrder !== null).sort((a, b) => a.drOrder! - b.drOrder!).map((t) => t.id)
  assert.equal(ordered, ['rebuild:minio', 'restore:state', 'rebuild:monitoring', 'restore:vm', 'dr:check'])
})

test.run()
