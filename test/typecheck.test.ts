// TypeScript strict (noUncheckedIndexedAccess, NodeNext) over scripts, lib, test, tools and bench.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawnSync } from 'node:child_process'

test('tsc --noEmit finds no type error', () => {
  const r = spawnSync('npx', ['tsc', '--noEmit', '-p', '.'], { encoding: 'utf8' })
  assert.is(r.stdout + r.stderr, '')
  assert.is(r.status, 0)
})

test.run()
