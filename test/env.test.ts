// lib/env.ts: numbers from the environment are checked; test hooks are inert outside the lab and in
// bundles (issue 12 item 11).
//   node --import tsx test/env.test.ts
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { envSeconds, testHook } from '../lib/env.ts'
import { DrError } from '../lib/errors.ts'
import { runTask } from './helpers.ts'

test('envSeconds: unset → default; a whole number in range → it; "2m", "-1", "0", "1e3" → usage error naming the variable', () => {
  delete process.env.HDR_T
  assert.is(envSeconds('HDR_T', 120), 120)
  process.env.HDR_T = '90'
  assert.is(envSeconds('HDR_T', 120), 90)
  for (const bad of ['2m', '-1', '0', '1e3', '99999999', ' 12 s']) {
    process.env.HDR_T = bad
    assert.throws(() => envSeconds('HDR_T', 120, 1, 3600), (e: unknown) => e instanceof DrError && e.exitCode === 2 && e.message === `HDR_T=${JSON.stringify(bad)}: not a whole number of seconds from 1 to 3600.`, bad)
  }
  delete process.env.HDR_T
})

test('testHook: honoured only in the lab (HDR_LAB_DIR), never in a bundle', () => {
  process.env.HDR_HOOK = '2026-11-25T12:00:00'
  const lab = process.env.HDR_LAB_DIR
  delete process.env.HDR_LAB_DIR
  assert.is(testHook('HDR_HOOK'), undefined)
  process.env.HDR_LAB_DIR = '/tmp/hdr-lab'
  assert.is(testHook('HDR_HOOK'), '2026-11-25T12:00:00')
  ;(globalThis as { __HDR_ENTRY?: string }).__HDR_ENTRY = 'verify:backups'
  assert.is(testHook('HDR_HOOK'), undefined)
  delete (globalThis as { __HDR_ENTRY?: string }).__HDR_ENTRY
  if (lab === undefined) delete process.env.HDR_LAB_DIR
  else process.env.HDR_LAB_DIR = lab
  delete process.env.HDR_HOOK
})

test('HDR_SSH_CONNECT_TIMEOUT=2m: verify:backups stops with a clear usage error (exit 2) before any connection', async () => {
  const r = await runTask('verify:backups', [], { env: { HDR_SSH_CONNECT_TIMEOUT: '2m' }, timeoutMs: 60_000 })
  assert.is(r.code, 2, r.output)
  assert.ok(r.stderr.includes('✗ HDR_SSH_CONNECT_TIMEOUT="2m": not a whole number of seconds from 1 to 600.'), r.output)
})

test.run()
