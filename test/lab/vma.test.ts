// VMA writer/reader (pve-sim/lib/vma.mjs) against the reader checks of proxmox/pve-qemu vma-reader.c.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
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
const md5 = (b: Buffer) => createHash('md5').update(b).digest()
/** Recompute the header MD5 (bytes 32–47 zeroed over header_size bytes) after an edit. */
function rehashHeader(b: Buffer): Buffer {
  const hs = b.readUInt32BE(56)
  b.fill(0, 32, 48); md5(b.subarray(0, hs)).copy(b, 32)
  return b
}
/** Recompute an extent header's MD5 (its 512 bytes with 24–39 zeroed) after an edit. */
function rehashExtent(b: Buffer, pos: number): Buffer {
  b.fill(0, pos + 24, pos + 40); md5(b.subarray(pos, pos + 512)).copy(b, pos + 24)
  return b
}
const { VmaReader } = await import('./pve-sim/lib/vma.mjs')
/** Feed buf to the streaming reader in `size`-byte chunks, each copied into one reused buffer (like `vma verify -`). */
function streamed(buf: Buffer, size: number, mode: 'verify' | 'restore' = 'verify'): void {
  const r = new VmaReader({ mode })
  const chunk = Buffer.alloc(size)
  for (let at = 0; at < buf.length; at += size) { const n = buf.copy(chunk, 0, at, at + size); r.push(chunk.subarray(0, n)); chunk.fill(0xaa) }
  r.end()
}
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

// Every reader error, each through readVma (one buffer), the streaming reader in odd chunk sizes, and the
// simulated `vma verify -` on the node (header errors bare, extent errors after `verify failed - `).
const sampleWithVmstate = () => writeVma({ configs: [{ name: 'qemu-server.conf', data: conf }], devices: [{ name: 'drive-scsi0', data: disk }, { name: 'vmstate', data: diskImage('vmstate', 1) }], ctime: 1795575602, clustersPerExtent: 20 })
/** blockinfo entry i of the extent at pos: [mask, dev_id, cluster]. */
const entryAt = (b: Buffer, pos: number, i: number) => pos + 40 + 8 * i
function setEntry(b: Buffer, pos: number, i: number, f: { mask?: number; devId?: number; cluster?: number }): Buffer {
  const at = entryAt(b, pos, i)
  const bi = b.readBigUInt64BE(at)
  const mask = f.mask ?? Number(bi >> 48n), devId = f.devId ?? Number((bi >> 32n) & 0xffn), cluster = f.cluster ?? Number(bi & 0xffffffffn)
  b.writeBigUInt64BE((BigInt(mask) << 48n) | (BigInt(devId) << 32n) | BigInt(cluster), at)
  return rehashExtent(b, pos)
}
const cases: Array<{ error: string; stage: 'header' | 'extent'; make: () => Buffer }> = [
  { error: "can't read vma header - got EOF", stage: 'header', make: () => sample().subarray(0, 5000) },
  { error: 'not a vma file - wrong magic number', stage: 'header', make: () => { const b = sample(); b.write('XMA', 0, 'latin1'); return b } },
  { error: 'wrong vma header size 12288', stage: 'header', make: () => { const b = sample(); b.writeUInt32BE(HEADER_STRUCT_SIZE, 56); return b } },
  // vma-reader.c `int need = header_size - sizeof(VmaHeader)`: the int wraps at 2^31 + 12288
  { error: `wrong vma header size ${(2 ** 31 + HEADER_STRUCT_SIZE) | 0}`, stage: 'header', make: () => { const b = sample(); b.writeUInt32BE(2 ** 31 + HEADER_STRUCT_SIZE, 56); return b } },
  { error: `wrong vma header size ${(2 ** 32 - 1) | 0}`, stage: 'header', make: () => { const b = sample(); b.writeUInt32BE(2 ** 32 - 1, 56); return b } },
  { error: "can't read vma header data - got EOF", stage: 'header', make: () => sample().subarray(0, HEADER_STRUCT_SIZE + 10) },
  { error: 'wrong vma header chechsum', stage: 'header', make: () => { const b = sample(); flip(b, 100); return b } },
  { error: 'wrong vma version 2', stage: 'header', make: () => { const b = sample(); b.writeUInt32BE(2, 4); return rehashHeader(b) } },
  { error: 'wrong vma blob buffer offset 100', stage: 'header', make: () => { const b = sample(); b.writeUInt32BE(100, 48); return rehashHeader(b) } },
  { error: `wrong vma blob buffer size 12288/${HEADER_STRUCT_SIZE + 512}`, stage: 'header', make: () => { const b = sample(); b.writeUInt32BE(HEADER_STRUCT_SIZE + 512, 52); return rehashHeader(b) } },
  { error: 'vma contains invalid data pointers', stage: 'header', make: () => { const b = sample(); b.writeUInt32BE(400, 3068); return rehashHeader(b) } },
  { error: 'read short extent (100 bytes)', stage: 'extent', make: () => { const b = sample(); return b.subarray(0, extentOffset(b, 1) + 100) } },
  { error: 'wrong vma extent header chechsum', stage: 'extent', make: () => { const b = sample(); flip(b, extentOffset(b, 1) + 60); return b } },
  { error: 'wrong vma extent uuid', stage: 'extent', make: () => { const b = sample(); const p = extentOffset(b, 1); flip(b, p + 10); return rehashExtent(b, p) } },
  { error: 'wrong vma extent header magic', stage: 'extent', make: () => { const b = sample(); const p = extentOffset(b, 0); b.write('XMAE', p, 'latin1'); return rehashExtent(b, p) } },
  { error: 'wrong vma extent header magic', stage: 'extent', make: () => { const b = sample(); const p = extentOffset(b, 0); b.writeUInt16BE(1, p + 4); return rehashExtent(b, p) } },
  { error: 'short vma extent (1000 < ', stage: 'extent', make: () => { const b = sample(); return b.subarray(0, extentOffset(b, 1) + 1000) } },
  // block_count > 944 (59 clusters of 16 blocks): vma_reader_restore's buffer holds VMA_MAX_EXTENT_SIZE (3867136) bytes
  { error: `short vma extent (3867136 < ${512 + 1000 * 4096})`, stage: 'extent', make: () => {
    const b = sample(); const p = extentOffset(b, 0); b.writeUInt16BE(1000, p + 6); rehashExtent(b, p)
    return Buffer.concat([b, Buffer.alloc(4 * 1048576, 0x55)])
  } },
  { error: 'short vma extent - too many blocks', stage: 'extent', make: () => { const b = sample(); const p = extentOffset(b, 0); b.writeUInt16BE(b.readUInt16BE(p + 6) - 1, p + 6); return rehashExtent(b, p) } },
  { error: 'vma extent error - missing blocks', stage: 'extent', make: () => { const b = sample(); const p = extentOffset(b, 0); b.writeUInt16BE(b.readUInt16BE(p + 6) + 1, p + 6); return rehashExtent(b, p) } },
  { error: 'found duplicated cluster 0 for stream drive-scsi0', stage: 'extent', make: () => { const b = sample(); return setEntry(b, extentOffset(b, 0), 1, { cluster: 0 }) } },
  { error: 'got wrong block address - write beyond end', stage: 'extent', make: () => { const b = sample(); return setEntry(b, extentOffset(b, 0), 1, { cluster: 48 }) } },
  { error: 'vma extent error - no device for dev_id 7', stage: 'extent', make: () => { const b = sample(); return setEntry(b, extentOffset(b, 0), 1, { devId: 7 }) } },
  { error: 'found out of order vmstate data', stage: 'extent', make: () => {
    const b = sampleWithVmstate()
    for (let n = 0; ; n++) {
      const p = extentOffset(b, n)
      for (let i = 0; i < 59; i++) if (((b.readBigUInt64BE(entryAt(b, p, i)) >> 32n) & 0xffn) === 2n) return setEntry(b, p, i, { cluster: 5 })
    }
  } },
]

test('every reader error: readVma, streaming in odd chunk sizes, and `vma verify -` on the node', () => {
  const env = { ...process.env, ...nodeEnv(labDir) }
  const vma = path.join(SIM_BIN, 'vma')
  for (const c of cases) {
    const buf = c.make()
    const m = errorOf(() => readVma(buf))
    assert.ok(m.startsWith(c.error), `readVma: ${c.error}: got ${m}`)
    for (const size of [511, 4099, 65536]) {
      const s = errorOf(() => streamed(buf, size))
      assert.is(s, m, `chunks of ${size}: ${c.error}`)
    }
    const r = spawnSync(vma, ['verify', '-'], { input: buf, env, encoding: 'utf8' })
    assert.is(r.status, 133, c.error)
    assert.is(r.stdout, '')
    const prefix = c.stage === 'header' ? '' : 'verify failed - '
    assert.ok(new RegExp(`^\\*\\* \\(process:\\d+\\): ERROR \\*\\*: [\\d:.]+: `).test(r.stderr) && r.stderr.endsWith(`: ${prefix}${m}\n`), `vma verify -: ${c.error}: got ${r.stderr}`)
  }
  // a clean archive with a vmstate stream, and restore through small chunks, still pass
  assert.not.throws(() => streamed(sampleWithVmstate(), 4099))
  assert.not.throws(() => streamed(sample(), 511, 'restore'))
  const cut = sample(); const cutAt = extentOffset(cut, 2)
  assert.is(errorOf(() => streamed(cut.subarray(0, cutAt), 4099, 'restore')), 'detected missing cluster 40 for stream drive-scsi0')
})

test('`vma verify` streams: a 96 MiB archive verifies in bounded memory, a bad one stops reading early', () => {
  const env = { ...process.env, ...nodeEnv(labDir) }
  const vma = path.join(SIM_BIN, 'vma')
  const MiB = 1048576
  const big = Buffer.alloc(96 * MiB)
  for (let o = 0; o < big.length; o += 4096) big.writeUInt32BE(o / 4096 + 1, o) // no zero block: every block stored
  const buf = writeVma({ configs: [{ name: 'qemu-server.conf', data: conf }], devices: [{ name: 'drive-scsi0', data: big }] })
  assert.ok(buf.length > 96 * MiB)
  const file = path.join(labDir, 'vma-big-test.vma')
  fs.writeFileSync(file, buf)
  const rssOf = (shell: string): { code: number | null; kib: number } => {
    const t = path.join(labDir, 'vma-big-test.time')
    const r = spawnSync('/usr/bin/time', ['-f', '%M', '-o', t, 'bash', '-c', shell], { env, encoding: 'utf8' })
    const kib = Number(fs.readFileSync(t, 'utf8').trim().split('\n').at(-1)); fs.rmSync(t)
    return { code: r.status, kib }
  }
  try {
    const floor = rssOf(`${process.execPath} -e 0`).kib
    const piped = rssOf(`cat '${file}' | '${vma}' verify -`)
    const named = rssOf(`'${vma}' verify '${file}'`)
    assert.is(piped.code, 0); assert.is(named.code, 0)
    // /usr/bin/time reports the largest process of the pipe: vma (node) — bounded, far below the archive's 96 MiB
    for (const [what, r] of [['stdin', piped], ['file', named]] as const) assert.ok(r.kib - floor < 32 * 1024, `vma verify ${what}: peak RSS ${r.kib} KiB vs node -e 0 ${floor} KiB`)
    // corrupt the first extent: vma exits at once, so the writer of the pipe gets EPIPE long before the end
    flip(buf, extentOffset(buf, 0) + 60); fs.writeFileSync(file, buf)
    const r = spawnSync('bash', ['-c', `cat '${file}' | '${vma}' verify -; echo "@@\${PIPESTATUS[0]}:\${PIPESTATUS[1]}"`], { env, encoding: 'utf8' })
    assert.match(r.stdout, /@@(141|1):133\n$/) // cat killed by SIGPIPE (or EPIPE) mid-file; vma exit 133
    assert.match(r.stderr, /verify failed - wrong vma extent header chechsum\n$/)
  } finally {
    fs.rmSync(file, { force: true })
  }
})

test.run()
