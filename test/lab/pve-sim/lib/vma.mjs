// VMA archive writer and reader — byte layout and error strings from proxmox/pve-qemu
// vma_spec.txt and debian/patches/pve/0026-PVE-Backup-add-vma-backup-format-code.patch
// (vma.h, vma-reader.c, vma-writer.c). Pure code over Buffers (the reader streams: VmaReader); no I/O.
import { createHash, randomBytes } from 'node:crypto'

export const BLOCK_SIZE = 4096
export const CLUSTER_SIZE = 65536
export const EXTENT_HEADER_SIZE = 512
export const BLOCKS_PER_EXTENT = 59
export const HEADER_STRUCT_SIZE = 12288
const MAGIC = Buffer.from('VMA\0', 'latin1')
const EXTENT_MAGIC = Buffer.from('VMAE', 'latin1')

/** An error the real `vma` tool would report, with its exact text (vma-reader.c). */
export class VmaError extends Error {
  /** @param {string} message @param {'header'|'extent'|'missing'} stage */
  constructor(message, stage) { super(message); this.stage = stage }
}

const md5 = (buf) => createHash('md5').update(buf).digest()
const isZero = (buf) => { for (let i = 0; i < buf.length; i++) if (buf[i] !== 0) return false; return true }

/**
 * Build a whole VMA archive (vma-writer.c: header with blob table and MD5, then extents of up to
 * 59 clusters, each with its own header MD5 and blockinfo; zero 4 KiB blocks are skipped; no trailer).
 * @param {{configs: {name: string, data: Buffer|string}[], devices: {name: string, data: Buffer}[],
 *   ctime?: number, uuid?: Buffer, clustersPerExtent?: number}} spec
 * @returns {Buffer}
 */
export function writeVma(spec) {
  const uuid = spec.uuid ?? randomBytes(16)
  const ctime = spec.ctime ?? Math.floor(Date.now() / 1000)
  const perExtent = Math.min(spec.clustersPerExtent ?? BLOCKS_PER_EXTENT, BLOCKS_PER_EXTENT)
  // blob table: position 0 reserved ("header_blob_table_pos = 1; /* start at pos 1 */")
  const blobs = [Buffer.alloc(1)]
  let pos = 1
  const addBlob = (data) => {
    const len = Buffer.alloc(2); len.writeUInt16LE(data.length)
    blobs.push(len, data); const at = pos; pos += 2 + data.length; return at
  }
  const addString = (s) => addBlob(Buffer.concat([Buffer.from(s, 'utf8'), Buffer.alloc(1)]))
  const cfgPtrs = spec.configs.map((c) => [addString(c.name), addBlob(Buffer.isBuffer(c.data) ? c.data : Buffer.from(c.data, 'utf8'))])
  const devPtrs = spec.devices.map((d) => addString(d.name))
  const table = Buffer.concat(blobs)
  const tableSize = Math.ceil(pos / 512) * 512
  const headerSize = HEADER_STRUCT_SIZE + tableSize
  const head = Buffer.alloc(headerSize)
  MAGIC.copy(head, 0)
  head.writeUInt32BE(1, 4)
  uuid.copy(head, 8)
  head.writeBigInt64BE(BigInt(ctime), 24)
  head.writeUInt32BE(HEADER_STRUCT_SIZE, 48)
  head.writeUInt32BE(pos, 52)
  head.writeUInt32BE(headerSize, 56)
  cfgPtrs.forEach(([n, d], i) => { head.writeUInt32BE(n, 2044 + 4 * i); head.writeUInt32BE(d, 3068 + 4 * i) })
  spec.devices.forEach((d, i) => {
    const off = 4096 + 32 * (i + 1) // dev_id 0 is unused
    head.writeUInt32BE(devPtrs[i] ?? 0, off)
    head.writeBigUInt64BE(BigInt(d.data.length), off + 8)
  })
  table.copy(head, HEADER_STRUCT_SIZE)
  md5(head).copy(head, 32)

  // clusters in device order; each cluster is one blockinfo entry, even when all-zero (mask 0)
  const parts = [head]
  let entries = [], blocks = []
  const flush = () => {
    if (!entries.length) return
    const eh = Buffer.alloc(EXTENT_HEADER_SIZE)
    EXTENT_MAGIC.copy(eh, 0)
    eh.writeUInt16BE(blocks.length, 6)
    uuid.copy(eh, 8)
    entries.forEach((bi, i) => eh.writeBigUInt64BE(bi, 40 + 8 * i))
    md5(eh).copy(eh, 24)
    parts.push(eh, ...blocks)
    entries = []; blocks = []
  }
  spec.devices.forEach((d, i) => {
    const devId = BigInt(i + 1)
    const clusters = Math.ceil(d.data.length / CLUSTER_SIZE)
    for (let c = 0; c < clusters; c++) {
      let mask = 0
      for (let b = 0; b < 16; b++) {
        const start = c * CLUSTER_SIZE + b * BLOCK_SIZE
        if (start >= d.data.length) break
        const blk = Buffer.alloc(BLOCK_SIZE)
        d.data.copy(blk, 0, start, Math.min(start + BLOCK_SIZE, d.data.length))
        if (!isZero(blk)) { mask |= 1 << b; blocks.push(blk) }
      }
      entries.push((BigInt(mask) << 48n) | (devId << 32n) | BigInt(c))
      if (entries.length >= perExtent) flush()
    }
  })
  flush()
  return Buffer.concat(parts)
}

/** Header bytes kept for the blob table; the MD5 covers all header_size bytes whatever this is. */
const HEADER_KEEP_MAX = 16 * 1048576 // the writer's HEADERBUF_SIZE is 512 KiB
/** Largest extent data part a well-formed extent can carry (59 full clusters). */
const EXTENT_DATA_MAX = BLOCKS_PER_EXTENT * CLUSTER_SIZE
/** VMA_MAX_EXTENT_SIZE: vma_reader_restore's read buffer (`unsigned char buf[VMA_MAX_EXTENT_SIZE]`). */
const MAX_EXTENT_SIZE = EXTENT_HEADER_SIZE + EXTENT_DATA_MAX

/**
 * Streaming reader: feed the decompressed archive in chunks of any size with push(), then end().
 * Checks in vma-reader.c's order: vma_reader_read_head on the header (MD5 over header_size bytes),
 * then vma_reader_restore_full / restore_extent per extent (MD5 of the 512-byte extent header only;
 * extent data is counted, not hashed). Memory: the header, one 512-byte extent header, and in
 * restore mode one extent's data (≤ 3.7 MiB) plus the device images; never the whole stream.
 * Chunks are not kept: a caller may reuse its read buffer.
 * mode 'verify' = `vma verify` (no missing-cluster pass); mode 'restore' also fills device images
 * and reports `detected missing cluster` at EOF; headerOnly stops after the header (extra input ignored).
 */
export class VmaReader {
  /** @param {{mode?: 'verify'|'restore', headerOnly?: boolean, onProgress?: (pct: number, bytes: number) => void}} [opts] */
  constructor(opts = {}) {
    this.mode = opts.mode ?? 'verify'
    this.headerOnly = !!opts.headerOnly
    this.onProgress = opts.onProgress
    this.header = null
    this.got = 0 // header bytes read
    this.first = Buffer.alloc(HEADER_STRUCT_SIZE)
    this.headerSize = 0
    this.hash = null
    this.kept = [] // header bytes kept (≤ HEADER_KEEP_MAX)
    this.keptLen = 0
    this.eh = Buffer.alloc(EXTENT_HEADER_SIZE) // current extent header
    this.ehFill = 0
    this.extentSize = 0
    this.dataFill = 0 // data bytes of the current extent read so far
    this.extData = null // restore only: the current extent's data
  }

  /** @param {Buffer} chunk */
  push(chunk) {
    let at = 0
    while (at < chunk.length) {
      if (!this.header) {
        at = this.#headerBytes(chunk, at)
        if (this.header && this.headerOnly) return
      } else if (this.ehFill < EXTENT_HEADER_SIZE) {
        const n = Math.min(EXTENT_HEADER_SIZE - this.ehFill, chunk.length - at)
        chunk.copy(this.eh, this.ehFill, at, at + n)
        this.ehFill += n; at += n
        if (this.ehFill === EXTENT_HEADER_SIZE) this.#extentHead()
      } else {
        const n = Math.min(this.extentSize - EXTENT_HEADER_SIZE - this.dataFill, chunk.length - at)
        if (this.extData && this.dataFill < EXTENT_DATA_MAX) chunk.copy(this.extData, this.dataFill, at, at + Math.min(n, EXTENT_DATA_MAX - this.dataFill))
        this.dataFill += n; at += n
        // block_count > 944: the real reader's buffer holds at most VMA_MAX_EXTENT_SIZE bytes, so its
        // `buf_pos < extent_size` test fails with the buffer full, whatever follows (vma_reader_restore)
        if (this.extentSize > MAX_EXTENT_SIZE && EXTENT_HEADER_SIZE + this.dataFill >= MAX_EXTENT_SIZE) {
          throw new VmaError(`short vma extent (${MAX_EXTENT_SIZE} < ${this.extentSize})`, 'extent')
        }
        if (EXTENT_HEADER_SIZE + this.dataFill === this.extentSize) this.#extentDone()
      }
    }
  }

  /** EOF: a clean end only right after an extent (there is no trailer). */
  end() {
    const fail = (m) => { throw new VmaError(m, 'extent') }
    if (!this.header) {
      if (this.got < HEADER_STRUCT_SIZE) throw new VmaError(`can't read vma header - got EOF`, 'header')
      throw new VmaError(`can't read vma header data - got EOF`, 'header')
    }
    if (this.headerOnly) return { header: this.header, devices: [] }
    if (this.ehFill > 0 && this.ehFill < EXTENT_HEADER_SIZE) fail(`read short extent (${this.ehFill} bytes)`)
    if (this.ehFill === EXTENT_HEADER_SIZE) fail(`short vma extent (${EXTENT_HEADER_SIZE + this.dataFill} < ${this.extentSize})`)
    if (this.mode === 'restore') {
      for (const dev of this.devs.values()) {
        if (dev.name === 'vmstate') continue
        const miss = dev.seen.indexOf(0)
        if (miss >= 0) throw new VmaError(`detected missing cluster ${miss} for stream ${dev.name}`, 'missing')
      }
    }
    return { header: this.header, devices: [...this.devs.values()].map(({ id, name, size, data }) => ({ id, name, size, data })) }
  }

  #headerBytes(chunk, at) {
    if (this.got < HEADER_STRUCT_SIZE) {
      const n = Math.min(HEADER_STRUCT_SIZE - this.got, chunk.length - at)
      chunk.copy(this.first, this.got, at, at + n)
      this.got += n; at += n
      if (this.got === HEADER_STRUCT_SIZE) {
        this.headerSize = checkHeadStart(this.first)
        const z = Buffer.from(this.first); z.fill(0, 32, 48) // md5sum field zeroed for the checksum
        this.hash = createHash('md5').update(z)
        this.kept = [this.first]; this.keptLen = HEADER_STRUCT_SIZE
      }
      return at
    }
    const n = Math.min(this.headerSize - this.got, chunk.length - at)
    const part = chunk.subarray(at, at + n)
    this.hash.update(part)
    if (this.keptLen < HEADER_KEEP_MAX) {
      const keep = Buffer.from(part.subarray(0, HEADER_KEEP_MAX - this.keptLen))
      this.kept.push(keep); this.keptLen += keep.length
    }
    this.got += n; at += n
    if (this.got === this.headerSize) {
      this.header = parseHead(Buffer.concat(this.kept, this.keptLen), this.headerSize, this.hash.digest())
      this.kept = []; this.hash = null
      if (!this.headerOnly) this.#startExtents()
    }
    return at
  }

  #startExtents() {
    const restore = this.mode === 'restore'
    this.devs = new Map(this.header.devices.map((d) => [d.id, {
      ...d, seen: new Uint8Array(Math.ceil(d.size / CLUSTER_SIZE)),
      data: restore && d.name !== 'vmstate' ? Buffer.alloc(d.size) : null,
    }]))
    if (restore) this.extData = Buffer.alloc(EXTENT_DATA_MAX)
    this.total = this.header.devices.reduce((s, d) => s + d.size, 0)
    this.done = 0; this.lastPct = 0; this.vmstateNext = 0
  }

  /** The 512-byte extent header is in: md5 (bytes 24–39 zeroed), uuid, magic — before its data is read. */
  #extentHead() {
    const fail = (m) => { throw new VmaError(m, 'extent') }
    const eh = this.eh
    const sum = Buffer.from(eh.subarray(24, 40)); eh.fill(0, 24, 40)
    if (!md5(eh).equals(sum)) fail('wrong vma extent header chechsum')
    if (!eh.subarray(8, 24).equals(this.header.uuid)) fail('wrong vma extent uuid')
    if (!eh.subarray(0, 4).equals(EXTENT_MAGIC) || eh.readUInt16BE(4) !== 0) fail('wrong vma extent header magic')
    this.extentSize = EXTENT_HEADER_SIZE + eh.readUInt16BE(6) * BLOCK_SIZE
    this.dataFill = 0
    if (this.extentSize === EXTENT_HEADER_SIZE) this.#extentDone()
  }

  /** The whole extent is in (restore_extent): blockinfo vs block_count, clusters, progress. */
  #extentDone() {
    const fail = (m) => { throw new VmaError(m, 'extent') }
    const eh = this.eh, extentSize = this.extentSize, devs = this.devs
    let start = EXTENT_HEADER_SIZE
    for (let i = 0; i < BLOCKS_PER_EXTENT; i++) {
      const bi = eh.readBigUInt64BE(40 + 8 * i)
      const cluster = Number(bi & 0xffffffffn), devId = Number((bi >> 32n) & 0xffn), mask = Number(bi >> 48n)
      if (!devId) continue
      const dev = devs.get(devId)
      if (!dev) fail(`vma extent error - no device for dev_id ${devId}`)
      const nBlocks = mask === 0xffff ? 16 : popcount(mask)
      if (start + nBlocks * BLOCK_SIZE > extentSize) fail('short vma extent - too many blocks')
      if (dev.name === 'vmstate') {
        if (cluster !== this.vmstateNext) fail('found out of order vmstate data')
        this.vmstateNext++
      } else {
        if (cluster >= dev.seen.length) fail('got wrong block address - write beyond end')
        if (dev.seen[cluster]) fail(`found duplicated cluster ${cluster} for stream ${dev.name}`)
        dev.seen[cluster] = 1
      }
      for (let b = 0; b < 16; b++) {
        if (!(mask & (1 << b))) continue
        const off = cluster * CLUSTER_SIZE + b * BLOCK_SIZE
        if (dev.name !== 'vmstate' && off >= dev.size) fail('got wrong block address - write beyond end')
        if (dev.data) {
          const from = start - EXTENT_HEADER_SIZE
          this.extData.copy(dev.data, off, from, from + Math.min(BLOCK_SIZE, dev.size - off))
        }
        start += BLOCK_SIZE
      }
      this.done += CLUSTER_SIZE
      const pct = this.total ? Math.min(100, Math.floor((this.done * 100) / this.total)) : 100
      if (pct > this.lastPct && this.onProgress) { for (let p = this.lastPct + 1; p <= pct; p++) this.onProgress(p, Math.min(this.done, this.total)) }
      this.lastPct = Math.max(this.lastPct, pct)
    }
    if (start !== extentSize) fail('vma extent error - missing blocks')
    this.ehFill = 0; this.dataFill = 0
  }
}

/** vma_reader_read_head on the fixed 12288-byte struct, before the rest of the header is read. */
function checkHeadStart(first) {
  const fail = (m) => { throw new VmaError(m, 'header') }
  if (!first.subarray(0, 4).equals(MAGIC)) fail('not a vma file - wrong magic number')
  const headerSize = first.readUInt32BE(56)
  // `int need = header_size - sizeof(VmaHeader); if (need <= 0)`: the C int wraps, so a header_size of
  // 2^31 + 12288 or more is refused too (and printed with %d, i.e. negative)
  const need = (headerSize - HEADER_STRUCT_SIZE) | 0
  if (need <= 0) fail(`wrong vma header size ${headerSize | 0}`)
  return headerSize
}

/**
 * vma_reader_read_head once header_size bytes are read: checksum, version, blob table, devices, configs.
 * @param {Buffer} head the header as stored (its first HEADER_KEEP_MAX bytes) @param {number} headerSize
 * @param {Buffer} digest MD5 over header_size bytes with the md5sum field zeroed
 */
function parseHead(head, headerSize, digest) {
  const fail = (m) => { throw new VmaError(m, 'header') }
  if (!digest.equals(head.subarray(32, 48))) fail('wrong vma header chechsum')
  const version = head.readUInt32BE(4)
  if (version !== 1) fail(`wrong vma version ${version}`)
  const bOff = head.readUInt32BE(48), bSize = head.readUInt32BE(52)
  if (!(bOff + 1 > HEADER_STRUCT_SIZE)) fail(`wrong vma blob buffer offset ${bOff}`)
  if (!(bOff + bSize <= headerSize)) fail(`wrong vma blob buffer size ${bOff}/${bSize}`)
  const blob = (ptr) => {
    if (!ptr || ptr >= bSize) return null
    const at = bOff + ptr
    if (at + 2 > bOff + bSize || at + 2 > head.length) return null
    const len = head[at] + (head[at + 1] << 8)
    if (at + 2 + len > bOff + bSize || at + 2 + len > head.length) return null
    return head.subarray(at + 2, at + 2 + len)
  }
  const str = (ptr) => {
    const b = blob(ptr)
    if (!b || !b.length || b[b.length - 1] !== 0) return null
    return b.subarray(0, b.length - 1).toString('utf8')
  }
  const devices = []
  for (let i = 1; i < 256; i++) {
    const off = 4096 + 32 * i
    const namePtr = head.readUInt32BE(off), size = Number(head.readBigUInt64BE(off + 8))
    if (!size || !namePtr) continue
    const name = str(namePtr)
    if (name === null) fail('vma contains invalid data pointers')
    devices.push({ id: i, name, size })
  }
  const configs = []
  for (let i = 0; i < 256; i++) {
    const n = head.readUInt32BE(2044 + 4 * i), d = head.readUInt32BE(3068 + 4 * i)
    if (!n || !d) continue
    const name = str(n), data = blob(d)
    if (name === null || data === null) fail('vma contains invalid data pointers')
    configs.push({ name, data: Buffer.from(data) })
  }
  return { version, uuid: Buffer.from(head.subarray(8, 24)), ctime: Number(head.readBigInt64BE(24)), headerSize, configs, devices }
}

/**
 * Parse and check the header (vma-reader.c vma_reader_read_head), in the reader's order.
 * @param {Buffer} buf the decompressed archive, or at least its head
 */
export function readVmaHeader(buf) {
  const r = new VmaReader({ headerOnly: true })
  r.push(buf)
  return r.end().header
}

/**
 * Read a whole archive held in memory (vma-reader.c vma_reader_restore_full / restore_extent) —
 * the streaming VmaReader fed one buffer.
 * mode 'verify' = `vma verify` (no missing-cluster pass); mode 'restore' also fills device images
 * and reports `detected missing cluster` at EOF.
 * @param {Buffer} buf @param {{mode?: 'verify'|'restore', onProgress?: (pct: number, bytes: number) => void}} [opts]
 */
export function readVma(buf, opts = {}) {
  const r = new VmaReader({ mode: opts.mode ?? 'verify', onProgress: opts.onProgress })
  r.push(buf)
  return r.end()
}

function popcount(n) { let c = 0; while (n) { c += n & 1; n >>>= 1 } return c }

/** The configs of an archive as a name → text map (what `vma config` / `pvesm extractconfig` print). */
export function vmaConfigs(buf) {
  return Object.fromEntries(readVmaHeader(buf).configs.map((c) => [c.name, c.data.toString('utf8')]))
}
