// --metrics FILE (issue 12 item 8): a random temporary name created exclusively, then rename; a symlink
// planted at the old predictable name or at the target is never followed.
//   node --import tsx test/metrics.test.ts
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { lstatSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { writeAtomic } from '../lib/metrics.ts'
import { DrError } from '../lib/errors.ts'
import { tempDir } from './tmp.ts'

test('a symlink planted at the old predictable temporary name does not redirect the write', () => {
  const dir = tempDir('hdr-metrics-')
  const victim = join(dir, 'victim')
  writeFileSync(victim, 'precious\n')
  const out = join(dir, 'hdr.prom')
  symlinkSync(victim, join(dir, `.hdr.prom.${process.pid}.tmp`)) // the name writeAtomic used to write through
  writeAtomic(out, 'homelab_dr_verify_exit_code 0\n')
  assert.is(readFileSync(victim, 'utf8'), 'precious\n')
  assert.is(readFileSync(out, 'utf8'), 'homelab_dr_verify_exit_code 0\n')
})

test('a symlink at the target is replaced by a regular file, its destination untouched', () => {
  const dir = tempDir('hdr-metrics-')
  const victim = join(dir, 'victim')
  writeFileSync(victim, 'precious\n')
  const out = join(dir, 'hdr.prom')
  symlinkSync(victim, out)
  writeAtomic(out, 'x 1\n')
  assert.ok(lstatSync(out).isFile())
  assert.is(lstatSync(out).mode & 0o777, 0o644)
  assert.is(readFileSync(victim, 'utf8'), 'precious\n')
})

test('two writes leave only the file (no temporary left); a failure is a DrError naming the file', () => {
  const dir = tempDir('hdr-metrics-')
  const out = join(dir, 'm', 'hdr.prom')
  writeAtomic(out, 'a 1\n')
  writeAtomic(out, 'a 2\n')
  assert.equal(readdirSync(join(dir, 'm')), ['hdr.prom'])
  writeFileSync(join(dir, 'notadir'), '')
  assert.throws(() => writeAtomic(join(dir, 'notadir', 'x.prom'), 'a 1\n'), (e: unknown) => e instanceof DrError && e.message.startsWith(`Cannot write the metrics file ${join(dir, 'notadir', 'x.prom')}:`))
})

test.run()
