import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { helpText, parseCommand, type CommandSpec } from '../lib/args.ts'
import { DrError } from '../lib/errors.ts'

const spec = {
  id: 'restore:vm',
  summary: 'Restore a guest.',
  description: 'Restores.',
  positionals: [{ name: 'vmid', description: 'the guest to restore', required: true }],
  options: {
    date: { type: 'string', value: 'YYYY-MM-DD', description: 'which day' },
    'no-start': { type: 'boolean', description: 'do not start it' },
  },
  examples: ['npm run restore:vm -- 101'],
} satisfies CommandSpec

function usageMessage(argv: string[]): string {
  try {
    parseCommand(spec, argv)
  } catch (e) {
    assert.instance(e, DrError)
    assert.is((e as DrError).exitCode, 2)
    return (e as DrError).message
  }
  throw new Error('expected a usage error')
}

test('a typo of a flag is refused and the right one suggested', () => {
  assert.is(usageMessage(['101', '--dryrun']), 'Unknown option --dryrun. Did you mean --dry-run?')
})

test('--dry-run does not swallow the VMID after it', () => {
  const p = parseCommand(spec, ['--dry-run', '101'])
  assert.equal(p.positionals, ['101'])
  assert.is(p.values['dry-run'], true)
  assert.is(p.values.yes, false)
})

test('string options take their value; booleans declared literally (--no-start)', () => {
  const p = parseCommand(spec, ['101', '--date', '2026-11-25', '--no-start'])
  assert.is(p.values.date, '2026-11-25')
  assert.is(p.values['no-start'], true)
})

test('a value that begins with a dash, as S3 version IDs may (Ceph RGW), is taken as the value', () => {
  const p = parseCommand(spec, ['101', '--date', '-Ppm5VgDVOQ9hZJkZnPUWc0Nt4hL-12', '--no-start'])
  assert.is(p.values.date, '-Ppm5VgDVOQ9hZJkZnPUWc0Nt4hL-12')
  assert.is(p.values['no-start'], true)
  assert.is(parseCommand(spec, ['101', '--date', '--x']).values.date, '--x')
  // One of our own options after it is still an option: the value is missing.
  assert.is(usageMessage(['101', '--date', '--no-start']), 'Option --date needs a value.')
  assert.is(usageMessage(['101', '--date', '--json=1']), 'Option --date needs a value.')
  assert.equal(parseCommand(spec, ['--', '101']).positionals, ['101'])
})

test('a missing required argument and an extra one are usage errors', () => {
  assert.is(usageMessage([]), 'Missing <vmid>: the guest to restore.')
  assert.is(usageMessage(['101', '102']), 'Unexpected argument: 102.')
  assert.is(usageMessage(['101', '--date']), 'Option --date needs a value.')
})

test('--help lists every option and the exit-code table', () => {
  const h = helpText(spec)
  assert.ok(h.startsWith('restore:vm — Restore a guest.\n\nUsage: npm run restore:vm -- <vmid> [options]'))
  for (const o of ['--date YYYY-MM-DD', '--no-start', '--dry-run', '--yes', '--force', '--json', '--tf-dir DIR']) assert.ok(h.includes(o), o)
  assert.ok(h.includes('  4  prerequisites not met: nothing was changed'))
  assert.ok(h.includes('  3  aborted: declined at the prompt, no terminal to ask on, or interrupted'))
})

test.run()
