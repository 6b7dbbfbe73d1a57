// lib/lock.ts: one run per guest or environment on this machine (issue 12 item 17).
//   node --import tsx test/lock.test.ts
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { takeLock } from '../lib/lock.ts'
import { DrError } from '../lib/errors.ts'
import { tempDir } from './tmp.ts'

process.env.HDR_LOCK_DIR = join(tempDir('hdr-lock-'), 'locks')
const dir = process.env.HDR_LOCK_DIR

test('a lock is a private file naming its holder; release removes it', () => {
  const l = takeLock({ kind: 'guest', node: 'pve', vmid: 101 }, 'restore:vm')
  assert.is(l.file, join(dir, 'guest-pve-101.lock'))
  assert.is(statSync(dir).mode & 0o777, 0o700)
  assert.is(statSync(l.file).mode & 0o777, 0o600)
  const h = JSON.parse(readFileSync(l.file, 'utf8'))
  assert.is(h.task, 'restore:vm')
  assert.is(h.pid, process.pid)
  assert.is(h.host, hostname())
  l.release()
  assert.not.ok(existsSync(l.file))
})

test('a second take of one key is refused with who holds it; other keys are free', () => {
  const a = takeLock({ kind: 'environment', name: 'prod' }, 'restore:state')
  assert.throws(() => takeLock({ kind: 'environment', name: 'prod' }, 'restore:state'), (e: unknown) =>
    e instanceof DrError && e.exitCode === 4 && e.message.startsWith(`Another homelab-dr run is working on environment 'prod': restore:state (pid ${process.pid} on ${hostname()}, started `))
  const b = takeLock({ kind: 'environment', name: 'lab' }, 'restore:state')
  const c = takeLock({ kind: 'guest', node: 'pve', vmid: 102 }, 'restore:vm')
  for (const l of [a, b, c]) l.release()
})

test('a stale lock (its process is gone) is taken over', () => {
  const dead = spawnSync('true').pid! // exited: its pid is not running
  writeFileSync(join(dir, 'guest-pve-103.lock'), JSON.stringify({ task: 'restore:vm', pid: dead, host: hostname(), started: 'x', command: '' }))
  const l = takeLock({ kind: 'guest', node: 'pve', vmid: 103 }, 'restore:vm')
  assert.is(JSON.parse(readFileSync(l.file, 'utf8')).pid, process.pid)
  l.release()
})

test('a lock held from another host is never guessed stale', () => {
  writeFileSync(join(dir, 'env-other.lock'), JSON.stringify({ task: 'restore:state', pid: 1, host: 'elsewhere', started: 'x', command: '' }))
  assert.throws(() => takeLock({ kind: 'environment', name: 'other' }, 'restore:state'), /pid 1 on elsewhere/)
})

test('a node or environment name cannot walk out of the lock folder', () => {
  const l = takeLock({ kind: 'environment', name: '../../etc/x' }, 'restore:state')
  assert.is(l.file, join(dir, 'env-.._.._etc_x.lock'))
  l.release()
})

test('a lock is removed at process exit, whatever path the run took', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', `import('${join(import.meta.dirname, '..', 'lib', 'lock.ts')}').then((m) => { m.takeLock({ kind: 'guest', node: 'pve', vmid: 104 }, 't'); throw new Error('crash') })`], { env: process.env, encoding: 'utf8' })
  assert.is.not(r.status, 0)
  assert.not.ok(existsSync(join(dir, 'guest-pve-104.lock')), r.stderr)
})

test.run()
