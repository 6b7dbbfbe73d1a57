import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
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

test('writePrivate: an existing report folder with a wider mode is tightened to 0700; a sticky shared folder is not', () => {
  const root = tempDir('hdr-files-')
  const reports = join(root, 'reports')
  mkdirSync(reports, { mode: 0o755 })
  chmodSync(reports, 0o755)
  writePrivate(join(reports, 'restore-vm-x.json'), '{}')
  assert.is(statSync(reports).mode & 0o777, 0o700)
  const shared = join(root, 'shared')
  mkdirSync(shared)
  chmodSync(shared, 0o1777)
  writePrivate(join(shared, 'r.json'), '{}')
  assert.is(statSync(shared).mode & 0o7777, 0o1777)
})

test.run()
