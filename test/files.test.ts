import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { readFileSync, statSync, writeFileSync } from 'node:fs'
import { tempDir } from './tmp.ts'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { writePrivate } from '../lib/files.ts'

test('writePrivate: new folders 0700 and file 0600; an existing world-readable file is tightened', () => {
  const root = tempDir('hdr-files-')
  const file = join(root, 'state', 'prod', '7.tfstate')
  writePrivate(file, '{"serial":7}')
  assert.is(statSync(join(root, 'state')).mode & 0o777, 0o700)
  assert.is(statSync(file).mode & 0o777, 0o600)
  const old = join(root, 'imports.tf')
  writeFileSync(old, 'old', { mode: 0o644 })
  writePrivate(old, 'new')
  assert.is(statSync(old).mode & 0o777, 0o600)
  assert.is(readFileSync(old, 'utf8'), 'new')
})

test.run()
