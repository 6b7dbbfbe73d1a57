// VMA writer/reader (pve-sim/lib/vma.mjs) against the reader checks of proxmox/pve-qemu vma-reader.c.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { writeVma, readVma, readVmaHeader, VmaError, CLUSTER_SIZE, HEADER_STRUCT_SIZE } from './pve-sim/lib/vma.mjs'
import { up, nodeEnv, lock } from './node.ts'
import { diskImage, SIM_BIN } from './seed.ts'

const labDir = process.env.HDR_LAB_DIR ?? '/tmp/hdr-lab'
const conf = 'name: t1\nscsi0: local-lvm:vm-900-disk-0,size=3M\n'
const disk = diskImage('vma test', 3) // 48 clusters, some all-zero, one lone block
const sample = () => writeVma({ configs: [{ name: 'qemu-server.conf', data: conf }], devices: [{ name: 'drive-scsi0', data: disk }], ctime: 1795575602, clustersPerExtent: 20 })
const errorOf = (fn: () => unknown): string => {
  try { fn() } catch (e) { if (e instanceof VmaError) return e.message; throw e }
  return '(no error)'
}
const flip = (b: Buffer, at: number) => b.writeUInt8(b.readUInt8(at) ^ 0xff, at)
/** Offset of extent n (0-based) in an archive. */
function extentOffset(buf: Buffer, n: number): number {
  let pos = readVmaHeader(buf).headerSize
  for (let i = 0; i < n; i++) pos += 512 + buf.readUInt16BE(pos + 6) * 4096
  return pos
}

test.before(async () => { await lock(labDir); await up(labDir) })

test('round trip: configs, device, ctime and every byte of the disk come back', () => {
  const buf = sample()
  const r = readVma(buf, { mode: 'restore' })
  assert.is(r.header.ctime, 1795575602)
  assert.equal(r.header.configs.map((c) => [c.name, c.data.toString()]), [['qemu-server.conf', conf]])
  assert.equal(r.header.devices, [{ id: 1, name: 'drive-scsi0', size: 3 * 1048576 }])
  assert.ok(r.devices[0]?.data?.equals(disk))
})

test('layout: magic, header MD5 zeroed field, blob table at 12288, several extents, no trailer', () => {
  const buf = sample()
  assert.is(buf.subarray(0, 4).toString('latin1'), 'VMA\0')
  assert.is(buf.readUInt32BE(48), HEADER_STRUCT_SIZE)
  assert.is(buf.readUInt32BE(56) % 512, 0)
  let pos = buf.readUInt32BE(56), extents = 0
  while (pos < buf.length) { assert.is(buf.subarray(pos, pos + 4).toString('latin1'), 'VMAE'); pos += 512 + buf.readUInt16BE(pos + 6) * 4096; extents++ }
  assert.is(pos, buf.length)
  assert.is(extents, Math.ceil((3 * 1048576) / CLUSTER_SIZE / 20))
})

test('flipped header byte → wrong vma header chechsum', () => {
  const buf = sample(); flip(buf, 100)
  assert.is(errorOf(() => readVma(buf)), 'wrong vma header chechsum')
})

test('bad magic → not a vma file - wrong magic number', () => {
  const buf = sample(); buf.write('XMA', 0, 'latin1')
  assert.is(errorOf(() => readVma(buf)), 'not a vma file - wrong magic number')
})

test('empty or short file → can\'t read vma header - got EOF', () => {
  assert.is(errorOf(() => readVma(Buffer.alloc(0))), "can't read vma header - got EOF")
  assert.is(errorOf(() => readVma(sample().subarray(0, 5000))), "can't read vma header - got EOF")
})

test('truncated extent → short vma extent (left < size); cut inside an extent header → read short extent', () => {
  const buf = sample()
  const second = extentOffset(buf, 1)
  const size = 512 + buf.readUInt16BE(second + 6) * 4096
  assert.is(errorOf(() => readVma(buf.subarray(0, second + 1000))), `short vma extent (1000 < ${size})`)
  assert.is(errorOf(() => readVma(buf.subarray(0, second + 100))), 'read short extent (100 bytes)')
})

test('bad extent md5 → wrong vma extent header chechsum', () => {
  const buf = sample(); flip(buf, extentOffset(buf, 1) + 60)
  assert.is(errorOf(() => readVma(buf)), 'wrong vma extent header chechsum')
})

test('missing cluster: verify passes, restore reports detected missing cluster', () => {
  const buf = sample()
  const cut = buf.subarray(0, extentOffset(buf, 2)) // clean cut between extents: clusters 40.. missing
  assert.not.throws(() => readVma(cut, { mode: 'verify' }))
  assert.is(errorOf(() => readVma(cut, { mode: 'restore' })), 'detected missing cluster 40 for stream drive-scsi0')
})

test('simulated `vma verify -` on the node: exit 0 for a whole archive, 133 and vma\'s error on stderr otherwise', () => {
  const env = { ...process.env, ...nodeEnv(labDir) }
  const vma = path.join(SIM_BIN, 'vma')
  const ok = spawnSync(vma, ['verify', '-'], { input: sample(), env, encoding: 'utf8' })
  assert.is(ok.status, 0)
  const bad = sample(); flip(bad, extentOffset(bad, 1) + 60)
  const r = spawnSync(vma, ['verify', '-'], { input: bad, env, encoding: 'utf8' })
  assert.is(r.status, 133)
  assert.match(r.stderr, /^\*\* \(process:\d+\): ERROR \*\*: [\d:.]+: verify failed - wrong vma extent header chechsum\n$/)
  const tmp = path.join(labDir, 'vma-test.vma'); fs.writeFileSync(tmp, bad.subarray(0, 20000))
  const f = spawnSync(vma, ['verify', tmp], { env, encoding: 'utf8' })
  assert.is(f.status, 133)
  fs.rmSync(tmp)
})

test.run()
