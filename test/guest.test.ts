// lib/guest.ts's node scripts, run by a local bash with the lab simulator's vma on the PATH: the
// check just before the overwrite (issue 12) on a safety backup that is not whole; the configuration
// read alone of an archive already read in this run (verify:backups --restore-test).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawnSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { tempDir } from './tmp.ts'
import { writeVma } from './lab/pve-sim/lib/vma.mjs'
import { probeArchive, readArchiveConfig, verifyBeforeOverwrite } from '../lib/guest.ts'
import { DrError } from '../lib/errors.ts'
import type { Backup } from '../lib/backups.ts'
import type { Pve } from '../lib/pve.ts'

const SIM_BIN = join(import.meta.dirname, 'lab', 'pve-sim', 'bin')
const dir = tempDir('hdr-guest-')
mkdirSync(join(dir, 'lab'), { recursive: true })
// `pvesm path local:backup/F` → this folder's F (the simulator's pvesm needs a whole lab node)
mkdirSync(join(dir, 'bin'))
writeFileSync(join(dir, 'bin', 'pvesm'), `#!/bin/sh\n[ "$1" = path ] && echo "${dir}/\${2#local:backup/}"\n`, { mode: 0o755 })

/** A node whose scripts run here: bash, perl, zstd and the simulator's vma. */
const localNode = {
  node: 'pve',
  ssh: {
    runScript: async (script: string, args: readonly string[]) => {
      const r = spawnSync('bash', ['-c', script, 'hdr', ...args], { encoding: 'utf8', env: { ...process.env, PATH: `${join(dir, 'bin')}:${SIM_BIN}:${process.env.PATH}`, HDR_LAB_DIR: join(dir, 'lab') } })
      return { exitCode: r.status ?? 255, stdout: r.stdout, stderr: r.stderr, timedOut: false, ms: 0 }
    },
  },
} as unknown as Pve

const chosen = { volid: 'local:backup/vzdump-qemu-101-2026_11_25-03_00_02.vma.zst', file: 'vzdump-qemu-101-2026_11_25-03_00_02.vma.zst', storage: 'local' } as Backup
const chosenPath = join(dir, chosen.file)
writeFileSync(chosenPath, 'the chosen backup, still there')

function safety(name: string, vma: Buffer) {
  const file = `vzdump-qemu-101-2026_12_02-${name}.vma.zst`
  const path = join(dir, file)
  writeFileSync(path, spawnSync('zstd', ['-q', '-c'], { input: vma, maxBuffer: 1 << 28 }).stdout)
  return { volid: `local:backup/${file}`, file, format: 'vma.zst', compression: 'zst', path }
}

/** The DrError's sentence the call ends with, or 'passed'. */
async function outcome(call: Promise<unknown>): Promise<string> {
  try {
    await call
  } catch (e) {
    assert.instance(e, DrError)
    return (e as DrError).message
  }
  return 'passed'
}
const refusal = (s: ReturnType<typeof safety>) => outcome(verifyBeforeOverwrite(localNode, chosen, chosenPath, s))

const devices = [{ name: 'drive-scsi0', data: Buffer.alloc(4 * 65536, 9) }]

test('EF-006 the safety backup just written is checked whole: a good one passes', async () => {
  assert.is(await refusal(safety('00_00_01', writeVma({ configs: [{ name: 'qemu-server.conf', data: 'name: web01\n' }], devices, ctime: 1764000000 }))), 'passed')
})

test('EF-006 a safety backup with no configuration in its header, or cut at an extent boundary, stops the restore before anything is overwritten', async () => {
  const none = safety('00_00_02', writeVma({ configs: [], devices, ctime: 1764000000 }))
  assert.is(await refusal(none), `The safety backup ${none.file} just written is not whole (no qemu-server.conf in the archive's header), so nothing was restored: it could not put the guest back.`)
  const whole = writeVma({ configs: [{ name: 'qemu-server.conf', data: 'name: web01\n' }], devices, ctime: 1764000000, clustersPerExtent: 2 })
  const h = whole.readUInt32BE(56)
  const cut = safety('00_00_03', whole.subarray(0, h + 512 + whole.readUInt16BE(h + 6) * 4096)) // the first extent only
  assert.match(await refusal(cut), new RegExp(`^The safety backup ${cut.file} just written is not whole \\(device drive-scsi0 lacks cluster 2 and 1 more of 4 \\(the archive ends early`))
})

test('a backup this run has read end to end: only its configuration is read, from the VMA header (the rest is not read again)', async () => {
  // the header whole, every extent after it damaged: the full probe refuses it, the header read does not read that far
  const vma = writeVma({ configs: [{ name: 'qemu-server.conf', data: 'name: web01\nagent: 1\n' }], devices: [{ name: 'drive-scsi0', data: Buffer.alloc(64 * 65536, 9) }], ctime: 1764000000 })
  const h = vma.readUInt32BE(56)
  vma.fill(0xee, h + 100)
  const b = { ...safety('00_00_04', vma), type: 'qemu', size: vma.length } as unknown as Backup
  const read = await readArchiveConfig(localNode, b)
  assert.equal(read, { path: join(dir, b.file), config: { name: 'web01', agent: '1' } })
  assert.match(await outcome(probeArchive(localNode, b)), 'failed its integrity check') // the full probe reads the damaged extents
  const none = { ...safety('00_00_05', writeVma({ configs: [], devices, ctime: 1764000000 })), type: 'qemu', size: 1 } as unknown as Backup
  assert.match(await outcome(readArchiveConfig(localNode, none)), "its configuration cannot be read (no qemu-server.conf in the archive's header)")
})

test.run()
