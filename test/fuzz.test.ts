// Property-based fuzzing (fast-check) of the parsers at the edge: what an operator types (args, VMIDs,
// dates, env names), what a node answers (pvesh JSON, guest config lines, vzdump names), what S3 and
// a Terraform repo hold (state versions, tfvars). Each property: a clear DrError or a correct value —
// never a crash (TypeError…) and never a silently wrong value. Bounded runs: the file takes seconds.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import fc from 'fast-check'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseCommand, type CommandSpec } from '../lib/args.ts'
import { parseBackupName, parseDateWanted, parseVmid, VZDUMP_NAME } from '../lib/backups.ts'
import { findEnvironment, type Config } from '../lib/config.ts'
import { DrError } from '../lib/errors.ts'
import { guestAddress, guestDisks, parseGuestConfig, Pve } from '../lib/pve.ts'
import { tryParseState } from '../lib/state.ts'
import { parseVarFile } from '../lib/tfvars.ts'
import type { Ssh } from '../lib/ssh.ts'
import { listVersions, type S3 } from '../lib/s3.ts'

const RUNS = { numRuns: 300 }
/** Runs fn; a DrError is an answer, anything else thrown is a crash. */
function outcome<T>(fn: () => T): { value: T } | { error: DrError } {
  try { return { value: fn() } } catch (e) {
    if (e instanceof DrError) return { error: e }
    throw e
  }
}
async function outcomeAsync<T>(fn: () => Promise<T>): Promise<{ value: T } | { error: DrError }> {
  try { return { value: await fn() } } catch (e) {
    if (e instanceof DrError) return { error: e }
    throw e
  }
}

// ---- what the operator types ----

const SPEC: CommandSpec = {
  id: 'fuzz', summary: 's', description: 'd', examples: [],
  positionals: [{ name: 'vmid', description: 'v', required: true }],
  options: { date: { type: 'string', description: 'd' }, 'no-start': { type: 'boolean', description: 'n' } },
}
const argToken = fc.oneof(
  fc.constantFrom('--date', '--no-start', '--yes', '--force', '--dry-run', '--json', '--tf-dir', '--help', '-y', '--', '-', '--date=', '--no-start=1', '--dryrun', '--datee'),
  fc.string({ maxLength: 12 }),
  fc.stringMatching(/^--?[a-z-]{0,10}(=.{0,5})?$/),
)

test('args: any argv gives parsed values of the declared types, or a usage DrError (exit 2)', () => {
  fc.assert(fc.property(fc.array(argToken, { maxLength: 8 }), (argv) => {
    const r = outcome(() => parseCommand(SPEC, argv))
    if ('error' in r) { assert.is(r.error.kind, 'usage', r.error.message); return }
    const v = r.value.values as Record<string, unknown>
    assert.ok(typeof v.date === 'string' || v.date === undefined)
    for (const b of ['no-start', 'yes', 'force', 'dry-run', 'json', 'help']) assert.type(v[b], 'boolean')
    assert.ok(r.value.positionals.every((p) => typeof p === 'string'))
  }), RUNS)
})

test('VMIDs: exactly 100–999999999 in plain decimal are accepted, as that number; everything else is a usage error', () => {
  fc.assert(fc.property(fc.oneof(fc.string({ maxLength: 12 }), fc.integer({ min: -1000, max: 2e9 }).map(String), fc.constantFrom('0100', '1e3', ' 101', '101 ', '+101', '0x65', '١٠١', '101.0')), (text) => {
    const r = outcome(() => parseVmid(text))
    const n = Number(text)
    const valid = /^[0-9]+$/.test(text) && !text.startsWith('0') && n >= 100 && n <= 999999999
    if (valid) assert.equal(r, { value: n })
    else { assert.ok('error' in r, `accepted ${JSON.stringify(text)}`); assert.is((r as { error: DrError }).error.kind, 'usage') }
  }), RUNS)
})

test('--date: real calendar days/minutes are read back as typed; anything else is a usage error', () => {
  const d2 = (n: number) => String(n).padStart(2, '0')
  const parts = fc.record({ y: fc.integer({ min: 0, max: 9999 }), mo: fc.integer({ min: 0, max: 13 }), d: fc.integer({ min: 0, max: 32 }), h: fc.option(fc.integer({ min: 0, max: 25 })), mi: fc.integer({ min: 0, max: 61 }), sep: fc.constantFrom('T', ' ') })
  fc.assert(fc.property(parts, ({ y, mo, d, h, mi, sep }) => {
    const day = `${String(y).padStart(4, '0')}-${d2(mo)}-${d2(d)}`
    const text = h === null ? day : `${day}${sep}${d2(h)}:${d2(mi)}`
    const r = outcome(() => parseDateWanted(text))
    const js = new Date(Date.UTC(2000, mo - 1, d)); js.setUTCFullYear(y)
    const realDay = mo >= 1 && mo <= 12 && d >= 1 && js.getUTCMonth() === mo - 1 && js.getUTCDate() === d
    // years 0–99 are refused (Date.UTC reads them as 19xx; no Proxmox backup is that old): an error, not a wrong day
    const valid = realDay && y >= 100 && (h === null || (h <= 23 && mi <= 59))
    if (!valid) { assert.ok('error' in r, `accepted ${text}`); return }
    assert.equal(r, { value: h === null ? { kind: 'day', day } : { kind: 'minute', minute: `${day}T${d2(h)}:${d2(mi)}` } })
  }), RUNS)
  fc.assert(fc.property(fc.string({ maxLength: 20 }), (text) => {
    const r = outcome(() => parseDateWanted(text))
    if ('error' in r) assert.is(r.error.kind, 'usage')
    else assert.ok(/^\d{4}-\d\d-\d\d([T ]\d\d:\d\d)?$/.test(text), `accepted ${JSON.stringify(text)}`)
  }), RUNS)
})

const ENV_NAMES = ['prod', 'lab', 'monitoring', 'minio']
const cfg = { tfDir: '/tf', environments: ENV_NAMES.map((name) => ({ name })) } as unknown as Config

test('env names: a known name finds its environment; anything else (unknown, odd characters, path tricks) is a usage error naming the known ones', () => {
  fc.assert(fc.property(fc.oneof(fc.constantFrom(...ENV_NAMES, 'Prod', '../prod', 'prod/', 'prod\n', '', 'prod ', '__proto__', 'constructor', 'toString'), fc.string({ maxLength: 12 })), (name) => {
    const r = outcome(() => findEnvironment(cfg, name))
    if (ENV_NAMES.includes(name)) { assert.ok('value' in r); assert.is((r as { value: { name: string } }).value.name, name); return }
    assert.ok('error' in r, `found ${JSON.stringify(name)}`)
    assert.is((r as { error: DrError }).error.kind, 'usage')
  }), RUNS)
})

// ---- what the node answers ----

const vzName = fc.record({
  type: fc.constantFrom('qemu', 'lxc', 'openvz'), vmid: fc.integer({ min: 100, max: 999999999 }),
  y: fc.integer({ min: 1970, max: 2100 }), mo: fc.integer({ min: 1, max: 12 }), d: fc.integer({ min: 1, max: 28 }),
  h: fc.integer({ min: 0, max: 23 }), mi: fc.integer({ min: 0, max: 59 }), s: fc.integer({ min: 0, max: 59 }),
  ext: fc.constantFrom('vma', 'vma.zst', 'vma.gz', 'vma.lzo', 'vma.bz2', 'tar', 'tar.zst', 'tar.gz', 'tgz', 'tar.lzo'),
})

test('vzdump names: every well-formed name reads back its type, VMID, time, format, compression and log name; mangled names are undefined', () => {
  const p2 = (n: number) => String(n).padStart(2, '0')
  fc.assert(fc.property(vzName, (n) => {
    const stamp = `${n.y}_${p2(n.mo)}_${p2(n.d)}-${p2(n.h)}_${p2(n.mi)}_${p2(n.s)}`
    const file = `vzdump-${n.type}-${n.vmid}-${stamp}.${n.ext}`
    const p = parseBackupName(file)
    assert.ok(p, file)
    assert.is(p!.type, n.type); assert.is(p!.vmid, n.vmid)
    assert.is(p!.localTime, `${n.y}-${p2(n.mo)}-${p2(n.d)}T${p2(n.h)}:${p2(n.mi)}:${p2(n.s)}`)
    assert.is(p!.format, n.ext)
    assert.is(p!.compression, n.ext === 'tgz' ? 'gz' : n.ext.split('.')[1])
    assert.is(p!.logName, `vzdump-${n.type}-${n.vmid}-${stamp}.log`)
  }), RUNS)
  fc.assert(fc.property(fc.string({ maxLength: 60 }), fc.nat(60), fc.string({ maxLength: 3 }), (junk, at, ins) => {
    const base = 'vzdump-qemu-101-2026_11_25-03_00_02.vma.zst'
    const file = at % 2 ? junk : base.slice(0, at % base.length) + ins + base.slice(at % base.length)
    const p = parseBackupName(file)
    assert.is(p !== undefined, VZDUMP_NAME.test(file), file)
  }), RUNS)
})

test('guest config lines: key: value pairs of the current config only; a config line never crashes the readers of address and disks', () => {
  const line = fc.oneof(
    fc.tuple(fc.stringMatching(/^[a-z][a-z0-9_-]{0,8}$/), fc.string({ maxLength: 30 }).map((s) => s.replace(/\n/g, ' '))).map(([k, v]) => `${k}: ${v}`),
    fc.constantFrom('[snap1]', '#comment', '', 'scsi0: local-lvm:vm-101-disk-0,size=8M', 'ipconfig0: ip=10.0.0.5/24,gw=10.0.0.1', 'net0: name=eth0,ip=dhcp', 'rootfs: local-lvm:vm-110-disk-0,size=1.5G', 'scsi1: none,media=cdrom', 'mp0: local:100/x.raw,size=99999999999T'),
    fc.string({ maxLength: 30 }),
  )
  fc.assert(fc.property(fc.array(line, { maxLength: 12 }), (lines) => {
    const text = lines.join('\n')
    const conf = parseGuestConfig(text)
    const current = text.split('\n').slice(0, text.split('\n').findIndex((l) => l.startsWith('[')) >>> 0)
    for (const [k, v] of Object.entries(conf)) {
      assert.ok(current.some((l) => l === `${k}: ${v}` || l === `${k}:${v}`), `${k}: ${v} not a line of ${JSON.stringify(text)}`)
      assert.ok(Object.hasOwn(conf, k))
    }
    const ip = guestAddress(conf)
    if (ip !== undefined) assert.ok(/^[0-9.]+$/.test(ip))
    for (const d of guestDisks(conf)) assert.ok(Number.isFinite(d.bytes) && d.bytes >= 0, JSON.stringify(d))
  }), RUNS)
})

/** A Pve whose node answers every pvesh call with `stdout`. */
function pveAnswering(stdout: string): Pve {
  const ssh = { run: async () => ({ exitCode: 0, stdout, stderr: '', timedOut: false }) } as unknown as Ssh
  return new Pve(ssh, 'pve')
}
const jsonish = fc.oneof(
  fc.json(),
  fc.array(fc.dictionary(fc.constantFrom('volid', 'vmid', 'ctime', 'format', 'size', 'subtype', 'storage', 'type', 'node', 'status', 'name', 'active', 'avail', 'notes', 'protected', 'content'), fc.oneof(fc.jsonValue(), fc.constantFrom('local:backup/vzdump-qemu-101-2026_11_25-03_00_02.vma.zst', 'qemu', 'lxc', '101', 101, 1764000000, -1, 1.5, 'vma.zst'))), { maxLength: 4 }).map((a) => JSON.stringify(a)),
  fc.string({ maxLength: 20 }),
)

test('pvesh JSON: any answer to resources/storages/backups is validated records or a DrError naming the call — never a crash, never a non-integer VMID', async () => {
  await fc.assert(fc.asyncProperty(jsonish, async (stdout) => {
    const pve = pveAnswering(stdout)
    const res = await outcomeAsync(() => pve.resources())
    if ('value' in res) for (const r of res.value) { assert.ok(Number.isInteger(r.vmid)); assert.ok(r.type === 'qemu' || r.type === 'lxc') }
    const st = await outcomeAsync(() => pve.storages())
    if ('value' in st) for (const s of st.value) { assert.type(s.storage, 'string'); assert.ok(Number.isFinite(s.avail)) }
    const bk = await outcomeAsync(() => pve.backups('local'))
    if ('value' in bk) for (const b of bk.value) { assert.ok(Number.isInteger(b.vmid)); assert.ok(Number.isInteger(b.ctime)); assert.type(b.file, 'string'); assert.ok(Number.isFinite(b.size)) }
  }), { numRuns: 200 })
})

// ---- what S3 and the Terraform repo hold ----

test('state versions: any object body is a valid state (version 4, integer serial, lineage, resources) or a reason, never a crash', () => {
  const state = fc.record({
    version: fc.oneof(fc.constant(4), fc.jsonValue()), serial: fc.oneof(fc.nat(), fc.jsonValue()), lineage: fc.oneof(fc.uuid(), fc.jsonValue()),
    resources: fc.oneof(fc.array(fc.record({ type: fc.string(), name: fc.string(), instances: fc.array(fc.jsonValue(), { maxLength: 2 }) }), { maxLength: 3 }), fc.jsonValue()),
  }, { requiredKeys: [] }).map((o) => JSON.stringify(o))
  fc.assert(fc.property(fc.oneof(state, fc.json(), fc.string({ maxLength: 30 })), (text) => {
    const r = tryParseState(text)
    if (!r.ok) { assert.type(r.reason, 'string'); assert.ok(r.reason.length > 0); return }
    assert.is(r.state.version, 4)
    assert.ok(Number.isInteger(r.state.serial) && r.state.serial >= 0)
    assert.ok(typeof r.state.lineage === 'string' && r.state.lineage !== '')
    assert.ok(Array.isArray(r.state.resources))
  }), RUNS)
})

test('S3 listings: any sequence of ListObjectVersions pages gives exactly the versions of the key, newest first, and ends (a server repeating its page cannot loop it forever)', async () => {
  const KEY = 'prod/terraform.tfstate'
  const entry = fc.record({
    Key: fc.constantFrom(KEY, `${KEY}.tflock`, 'prod/other', undefined),
    VersionId: fc.option(fc.stringMatching(/^[a-zA-Z0-9.]{1,8}$/), { nil: undefined }),
    LastModified: fc.option(fc.date({ min: new Date(0), max: new Date(4e12), noInvalidDate: true }), { nil: undefined }),
    IsLatest: fc.option(fc.boolean(), { nil: undefined }),
    Size: fc.option(fc.nat(), { nil: undefined }),
  })
  const page = fc.record({
    Versions: fc.option(fc.array(entry, { maxLength: 4 }), { nil: undefined }),
    DeleteMarkers: fc.option(fc.array(entry, { maxLength: 2 }), { nil: undefined }),
    IsTruncated: fc.option(fc.boolean(), { nil: undefined }),
    NextKeyMarker: fc.option(fc.constantFrom(KEY, `${KEY}.tflock`), { nil: undefined }),
    NextVersionIdMarker: fc.option(fc.constantFrom('a', 'b'), { nil: undefined }),
  })
  await fc.assert(fc.asyncProperty(fc.array(page, { minLength: 1, maxLength: 4 }), fc.boolean(), async (pages, repeatLast) => {
    let sent = 0
    const s3 = {
      sdk: { ListObjectVersionsCommand: class { constructor(readonly input: unknown) {} } },
      client: { send: async () => { const p = pages[Math.min(sent++, pages.length - 1)]!; return sent > pages.length && !repeatLast ? { IsTruncated: false } : p } },
    } as unknown as S3
    const r = await outcomeAsync(() => listVersions(s3, 'tfstate', KEY))
    assert.ok(sent <= pages.length + 1, `${sent} requests for ${pages.length} pages`)
    if ('error' in r) { assert.match(r.error.message, `versions of s3://tfstate/${KEY} does not move on`); return }
    const got = r.value
    for (const v of got) { assert.type(v.versionId, 'string'); assert.ok(v.versionId.length > 0); assert.ok(v.lastModified instanceof Date) }
    for (let i = 1; i < got.length; i++) {
      const [a, b] = [got[i - 1]!, got[i]!]
      assert.ok(Number(a.isLatest) > Number(b.isLatest) || (a.isLatest === b.isLatest && a.lastModified >= b.lastModified), 'newest first, latest on top')
    }
  }), { numRuns: 300 })
})

test('tfvars: generated HCL (strings with escapes, numbers, bools, lists, maps) reads back as the same values; broken HCL is a DrError naming the file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hdr-fuzz-tfvars-'))
  try {
    const ident = fc.stringMatching(/^[a-z][a-z0-9_]{0,8}$/)
    const str = fc.string({ maxLength: 12 }).filter((s) => !s.includes('${') && !s.includes('%{'))
    const hclStr = (s: string) => JSON.stringify(s) // JSON string escapes are HCL string escapes (\" \\ \n \t \uNNNN)
    const scalar: fc.Arbitrary<[string, unknown]> = fc.oneof(
      str.map((s): [string, unknown] => [hclStr(s), s]),
      fc.integer({ min: -1e6, max: 1e6 }).map((n): [string, unknown] => [String(n), n]),
      fc.boolean().map((b): [string, unknown] => [String(b), b]),
    )
    const value = fc.oneof(
      scalar,
      fc.array(scalar, { maxLength: 3 }).map((xs): [string, unknown] => [`[${xs.map((x) => x[0]).join(', ')}]`, xs.map((x) => x[1])]),
      fc.dictionary(ident, scalar, { maxKeys: 3 }).map((m): [string, unknown] => [`{\n${Object.entries(m).map(([k, v]) => `  ${k} = ${v[0]}`).join('\n')}\n}`, Object.fromEntries(Object.entries(m).map(([k, v]) => [k, v[1]]))]),
    )
    let n = 0
    await fc.assert(fc.asyncProperty(fc.dictionary(ident, value, { minKeys: 1, maxKeys: 4 }), async (vars) => {
      const file = join(dir, `t${n++}.tfvars`)
      writeFileSync(file, Object.entries(vars).map(([k, v]) => `${k} = ${v[0]}`).join('\n') + '\n')
      const got = await parseVarFile(file, dir)
      assert.equal(got, Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, v[1]])))
    }), { numRuns: 60 })
    await fc.assert(fc.asyncProperty(fc.string({ maxLength: 40 }), async (text) => {
      const file = join(dir, `b${n++}.tfvars`)
      writeFileSync(file, text)
      const r = await outcomeAsync(() => parseVarFile(file, dir))
      if ('error' in r) assert.match(r.error.message, `b${n - 1}.tfvars`)
      else assert.ok(r.value !== null && typeof r.value === 'object' && !Array.isArray(r.value))
    }), { numRuns: 60 })
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test.run()
