// lib/exec.ts: local programs without a shell (issue 12 items 5 and 13).
//   node --import tsx test/exec.test.ts
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { exec } from '../lib/exec.ts'

const dir = mkdtempSync(join(tmpdir(), 'hdr-exec-'))
test.after(() => rmSync(dir, { recursive: true, force: true }))

test('no shell: BASH_ENV never runs, neither for the program nor for a bash it starts', async () => {
  const marker = join(dir, 'bash-env-ran')
  const rc = join(dir, 'rc.sh')
  writeFileSync(rc, `touch ${marker}\n`)
  const env = { ...process.env, BASH_ENV: rc, ENV: rc }
  const a = await exec('true', [], { env })
  assert.is(a.exitCode, 0)
  assert.not.ok(existsSync(marker), 'BASH_ENV ran when starting `true`')
  const b = await exec('bash', ['-c', 'echo "${BASH_ENV-unset}"'], { env })
  assert.is(b.stdout.trim(), 'unset')
  assert.not.ok(existsSync(marker), 'BASH_ENV ran in a bash the program started')
})

test('no shell: arguments reach the program as they are (no expansion, no substitution)', async () => {
  const hostile = `$(touch ${join(dir, 'x')}); \`id\` *; echo $HOME "'`
  const r = await exec('printf', ['%s', hostile])
  assert.is(r.stdout, hostile)
  assert.not.ok(existsSync(join(dir, 'x')))
})

test('a missing program is exit 127 with a sentence, not a crash', async () => {
  const r = await exec('hdr-no-such-program', ['a'])
  assert.is(r.exitCode, 127)
  assert.match(r.stderr, /hdr-no-such-program: command not found/)
})

test('input goes to stdin; stdout is streamed to onStdout', async () => {
  const chunks: string[] = []
  const r = await exec('cat', [], { input: 'hello\n', onStdout: (c) => chunks.push(c) })
  assert.is(r.stdout, 'hello\n')
  assert.is(chunks.join(''), 'hello\n')
})

test('timeout: SIGTERM, then SIGKILL after the grace period for a program that ignores SIGTERM', async () => {
  const t0 = Date.now()
  // 2 s before the SIGTERM: bash has set its trap by then, even on a loaded machine ('ready' proves it)
  const r = await exec('bash', ['-c', 'trap "" TERM; echo ready; exec sleep 30'], { timeoutMs: 2000, killGraceMs: 500 })
  const ms = Date.now() - t0
  assert.is(r.stdout, 'ready\n')
  assert.ok(r.timedOut)
  assert.is(r.exitCode, 128 + 9)
  assert.ok(ms < 8000, `took ${ms} ms`)
})

test('timeout: a program that honours SIGTERM ends with it (exit 143), timedOut', async () => {
  const r = await exec('sleep', ['30'], { timeoutMs: 200 })
  assert.ok(r.timedOut)
  assert.is(r.exitCode, 143)
})

test.run()
