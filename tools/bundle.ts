// npm run bundle: one self-contained dist/<task>.mjs per script, runnable with bare `node` >= 20 and no
// node_modules. Node 20, not 18: the AWS SDK v3 (restore:state, verify:backups --states) requires it, so
// the bundles target node20 and their first lines refuse an older node with one sentence (exit 4)
// instead of failing somewhere inside the SDK. (Proxmox VE 8's Debian ships Node 18: install Node 20+
// from NodeSource or run the tasks from the operator's machine.) Measured gotchas handled here:
// bundled CommonJS packages need `require` in ESM (createRequire banner; esbuild keeps the source shebang first), and the HCL parser's
// wasm (read from disk next to the package) and the lazily loaded packages travel in the bundle as
// brotli + base64 comments at its end (payload()).
import { build, type Plugin } from 'esbuild'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { brotliCompressSync, constants as zlib, gunzipSync } from 'node:zlib'
import { dirname, join } from 'node:path'
import tasks from '../tasks.json' with { type: 'json' }

const require = createRequire(import.meta.url)
const hclDir = dirname(dirname(require.resolve('@cdktf/hcl2json')))

/**
 * Payloads: what only some runs need travels as brotli + base64 in comments at the very end of the
 * file (`/*@hdr-payload:NAME:HASH:SIZE:...*\/`: HASH the first 16 hex of the decoded bytes' sha256,
 * SIZE their length), read from the bundle's own file on first use (`__hdrPayload`, in the banner),
 * and kept decoded in the user's cache under HASH: decoding the parser's wasm costs every run that
 * reads the repo ~80–130 ms, reading it back ~5–30 ms (docs/benchmarks.md, restore:vm). In a string, V8 would scan it on every start, `--help` included; in a comment it is
 * only decoded with the file, so each byte saved is start-up saved (docs/benchmarks.md, start-up):
 *   hcl-wasm  the HCL parser's wasm: 6.5 MB raw, 1.7 MB as shipped (gzip), 1.25 MB brotli
 *   <package> the heavy packages a task loads with `await import()` only when it needs them (LAZY)
 */
const payloads = new Map<string, string>()
const CACHE = join('node_modules', '.cache', 'homelab-dr')
function payload(name: string, bytes: Buffer): string {
  if (payloads.has(name)) return name
  // brotli at its best is ~12 s for the wasm: kept by content hash across runs of npm run bundle
  const file = join(CACHE, `${createHash('sha256').update(bytes).digest('hex').slice(0, 16)}.br`)
  if (!existsSync(file)) {
    mkdirSync(CACHE, { recursive: true })
    const params = { [zlib.BROTLI_PARAM_QUALITY]: 11, [zlib.BROTLI_PARAM_LGWIN]: 24, [zlib.BROTLI_PARAM_SIZE_HINT]: bytes.length }
    writeFileSync(file, brotliCompressSync(bytes, { params }))
  }
  payloads.set(name, `${createHash('sha256').update(bytes).digest('hex').slice(0, 16)}:${bytes.length}:${readFileSync(file).toString('base64')}`)
  return name
}
const payloadCall = (name: string) => `globalThis.__hdrPayload(${JSON.stringify(name)})`
/** Does this code ask for that payload? (quoted as esbuild prints it) */
const calls = (code: string, name: string) => code.includes(`__hdrPayload(${JSON.stringify(name)})`)
/** The payloads a payload's own code asks for (the HCL parser's JavaScript asks for its wasm). */
const uses = new Map<string, string[]>()

const inlineHclWasm: Plugin = {
  name: 'inline-hcl2json-wasm',
  setup(b) {
    b.onLoad({ filter: /@cdktf[\\/]hcl2json[\\/]lib[\\/]bridge\.js$/ }, (args) => {
      const src = readFileSync(args.path, 'utf8')
      const wasm = gunzipSync(readFileSync(join(hclDir, 'main.wasm.gz')))
      const patched = src.replace(
        /\(0, zlib_1\.gunzipSync\)\(await fs\.readFile\(\(0, path_1\.join\)\(__dirname, "\.\.", "main\.wasm\.gz"\)\)\)/,
        payloadCall(payload('hcl-wasm', wasm)),
      )
      if (patched === src) throw new Error('hcl2json changed: the wasm loader was not found to inline')
      return { contents: patched, loader: 'js', resolveDir: dirname(args.path) }
    })
  },
}

/**
 * Heavy packages that a task loads with `await import()` only when it needs them (the AWS SDK, the
 * HCL parser's JavaScript) are bundled on their own as a payload and compiled on first use (new
 * Function), once: `--help` and the runs that never touch S3 do not pay for them.
 */
const LAZY = ['@aws-sdk/client-s3', '@cdktf/hcl2json']
const lazySources = new Map<string, string>()
async function lazyModule(pkg: string): Promise<string> {
  const cached = lazySources.get(pkg)
  if (cached) return cached
  const r = await build({
    stdin: { contents: `module.exports = require(${JSON.stringify(pkg)})`, resolveDir: process.cwd(), loader: 'js' },
    bundle: true, write: false, platform: 'node', format: 'cjs', target: 'node20', charset: 'ascii',
    plugins: [inlineHclWasm], external: ['performance'], legalComments: 'none', logLevel: 'warning',
  })
  const code = r.outputFiles[0]!.text
  uses.set(pkg, [...payloads.keys()].filter((n) => calls(code, n)))
  const loader = `const m = { exports: {} };
new Function('module', 'exports', 'require', ${payloadCall(payload(pkg, Buffer.from(code)))}.toString())(m, m.exports, require);
module.exports = m.exports;`
  lazySources.set(pkg, loader)
  return loader
}
const lazyPackages: Plugin = {
  name: 'lazy-packages',
  setup(b) {
    const filter = new RegExp(`^(${LAZY.map((p) => p.replace(/[/.]/g, (c) => `\\${c}`)).join('|')})$`)
    b.onResolve({ filter }, (args) => (args.kind === 'dynamic-import' ? { path: args.path, namespace: 'lazy' } : undefined))
    b.onLoad({ filter: /.*/, namespace: 'lazy' }, async (args) => ({ loader: 'js', contents: await lazyModule(args.path) }))
  },
}
/** The Node.js major version the bundles need and target: package.json's engines (test/bundle.test.ts). */
const NODE_MAJOR = 20

const banner = [
  "import { createRequire as __hdrCreateRequire } from 'node:module';",
  'const require = __hdrCreateRequire(import.meta.url);',
  `if (Number(process.versions.node.split('.')[0]) < ${NODE_MAJOR}) { process.stderr.write('✗ homelab-dr needs Node.js ${NODE_MAJOR} or later; this is Node.js ' + process.versions.node + '. Nothing was changed.\\n  Install Node.js ${NODE_MAJOR}+ (https://nodejs.org, or NodeSource packages on Proxmox/Debian).\\n'); process.exit(4); }`,
  // a payload appended after the code (see payload()): found from the end, decoded on first use; a
  // file cut short or damaged in the copy says so in one line (exit 4) instead of a stack trace
  // (the file read once, as bytes: only the payload asked for is turned into text). Decoded, it is kept
  // in $HDR_CACHE_DIR (default $XDG_CACHE_HOME/homelab-dr or ~/.cache/homelab-dr) under its hash, and
  // read back when its size matches; a cache that cannot be read or written is only not used.
  `let __hdrFile;
globalThis.__hdrPayload = (name) => {
  const fs = require('node:fs'), path = require('node:path');
  const file = (__hdrFile ??= fs.readFileSync(new URL(import.meta.url)));
  const tag = '/*@hdr-payload:' + name + ':';
  const at = file.lastIndexOf(tag);
  try {
    if (at < 0) throw new Error('missing');
    const m = /^([0-9a-f]{16}):([0-9]+):/.exec(file.latin1Slice(at + tag.length, at + tag.length + 40));
    if (!m) throw new Error('damaged');
    const size = Number(m[2]);
    const dir = process.env.HDR_CACHE_DIR || path.join(process.env.XDG_CACHE_HOME || path.join(require('node:os').homedir(), '.cache'), 'homelab-dr');
    const kept = path.join(dir, m[1] + '-' + name.replace(/[^A-Za-z0-9.-]/g, '_'));
    try { const b = fs.readFileSync(kept); if (b.length === size) return b; } catch {}
    const from = at + tag.length + m[0].length;
    // one output buffer of the known size: no chunks to join (~30 ms on the wasm)
    const out = require('node:zlib').brotliDecompressSync(Buffer.from(file.latin1Slice(from, file.indexOf('*/', from)), 'base64'), { chunkSize: Math.max(64, size) });
    if (out.length !== size) throw new Error('damaged');
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      fs.writeFileSync(kept + '.' + process.pid, out, { mode: 0o600 });
      fs.renameSync(kept + '.' + process.pid, kept);
    } catch { try { fs.rmSync(kept + '.' + process.pid, { force: true }); } catch {} }
    return out;
  } catch {
    process.stderr.write('\\u2717 This file is incomplete: its ' + name + ' part is ' + (at < 0 ? 'missing' : 'damaged') + ' (cut short or altered when it was copied?).\\n  Copy it again, or rebuild it with npm run bundle.\\n');
    process.exit(4);
  }
};`,
].join('\n')

for (const t of tasks.tasks) {
  const out = `dist/${t.id.replace(':', '-')}.mjs`
  await build({
    entryPoints: [t.script],
    outfile: out,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: `node${NODE_MAJOR}`,
    // Every script a bundle imports (dr imports the others) shares this file: name the one to run.
    banner: { js: `${banner}\nglobalThis.__HDR_ENTRY = ${JSON.stringify(t.id)};` },
    plugins: [lazyPackages, inlineHclWasm],
    // hcl2json's Go bridge does `globalThis.performance ??= require("performance")`: never reached on Node >= 16.
    external: ['performance'],
    legalComments: 'none',
    // ASCII only: one non-ASCII character (a comment's '…') makes V8 hold the whole file as
    // two-byte text, which costs start-up on every run.
    charset: 'ascii',
    logLevel: 'warning',
  })
  // esbuild escapes strings but keeps some comments as written: escape what is left (in a comment
  // the escape is only text; in a string or template it is the same character).
  let text = readFileSync(out, 'utf8')
  if (/[^\x00-\x7f]/.test(text)) text = text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
  // each payload the code asks for, and those they ask for in turn
  const needed = new Set([...payloads.keys()].filter((n) => calls(text, n)))
  for (const n of needed) for (const m of uses.get(n) ?? []) needed.add(m)
  for (const n of needed) text += `\n/*@hdr-payload:${n}:${payloads.get(n)}*/\n`
  writeFileSync(out, text)
  process.stdout.write(`${out}\n`)
}
