import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { PassThrough } from 'node:stream'
import { confirm } from '../lib/prompt.ts'
import { DrError } from '../lib/errors.ts'

const io = (isTTY: boolean, typed?: string) => {
  const input = Object.assign(new PassThrough(), { isTTY })
  const output = new PassThrough()
  if (typed === undefined) input.end()
  else input.end(typed)
  return { input, output }
}
const none = { yes: false, force: false }

test('confirm() refuses with no TTY and neither --yes nor --force (exit 3)', async () => {
  try {
    await confirm('Overwrite VM 101?', none, io(false, 'y\n'))
    assert.unreachable('confirmed without a terminal')
  } catch (e) {
    assert.instance(e, DrError)
    assert.is((e as DrError).exitCode, 3)
    assert.is((e as DrError).message, 'Refusing to continue without confirmation: there is no terminal to ask on.')
  }
})

test('confirm() defaults to No: empty answer, closed input, anything but y/yes', async () => {
  assert.is(await confirm('Go?', none, io(true, '\n')), false)
  assert.is(await confirm('Go?', none, io(true)), false)
  assert.is(await confirm('Go?', none, io(true, 'sure\n')), false)
  assert.is(await confirm('Go?', none, io(true, 'y\n')), true)
  assert.is(await confirm('Go?', none, io(true, 'YES\n')), true)
})

test('confirm() with --yes or --force does not ask', async () => {
  assert.is(await confirm('Go?', { yes: true, force: false }, io(false)), true)
  assert.is(await confirm('Go?', { yes: false, force: true }, io(false)), true)
})

test('a real terminal answer reaches confirm() through a pty', async () => {
  const code = `import { confirm } from './lib/prompt.ts'; const ok = await confirm('Proceed?', { yes: false, force: false }); console.log(ok ? 'CONFIRMED' : 'DECLINED')`
  const { spawnSync } = await import('node:child_process')
  const run = (typed: string) =>
    spawnSync('script', ['-qefc', `node --import tsx --input-type=module -e "${code.replace(/"/g, '\\"')}"`, '/dev/null'], { input: typed, encoding: 'utf8', cwd: new URL('..', import.meta.url).pathname, timeout: 20_000 })
  assert.match(run('y\n').stdout, /CONFIRMED/)
  assert.match(run('n\n').stdout, /DECLINED/)
})

test.run()
