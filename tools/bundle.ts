// npm run bundle: one self-contained dist/<task>.mjs per script, runnable with bare `node` >= 20 and no
// node_modules. Node 20, not 18: the AWS SDK v3 (restore:state, verify:backups --states) requires it, so
// the bundles target node20 and their first lines refuse an older node with one sentence (exit 4)
// instead of failing somewhere inside the SDK. (Proxmox VE 8's Debian ships Node 18: install Node 20+
// from NodeSource or run the tasks from the operator's machine.) Measured gotchas handled here:
// bundled CommonJS packages need `require` in ESM (createRequire banner; esbuild keeps the source shebang first), and the HCL parser's
// wasm (read from disk next to the package) travels in the bundle as a base64 comment at its end.
import { build, type Plugin } from 'esbuild'
import { readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { brotliCompressSync } from 'node:zlib'
import { dirname, join } from 'node:path'
import tasks from '../tasks.json' with { type: 'json' }

const require = createRequire(import.meta.url)
const hclDir = dirname(dirname(require.resolve('@cdktf/hcl2json')))

/**
 * The HCL parser's wasm (1.7 MB gzipped, 2.3 MB as base64) is the bulk of every bundle. As a string
 * in the code, V8 scans it on every start, `--help` included; as a comment at the very end of the file
 * it is skipped almost for free, and read from the bundle's own file the first time a .tf file is
 * parsed (`__hdrPayload`, in the banner). Measured in docs/benchmarks.md (start-up).
 */
const WASM = 'hcl-wasm'
const payloadComment = () => `\n/*@hdr-payload:${WASM}:${readFileSync(join(hclDir, 'main.wasm.gz')).toString('base64')}*/\n`

const inlineHclWasm: Plugin = {
  name: 'inline-hcl2json-wasm',
  setup(b) {
    b.onLoad({ filter: /@cdktf[\\/]hcl2json[\\/]lib[\\/]bridge\.js$/ }, (args) => {
      const src = readFileSync(args.path, 'utf8')
      const patched = src.replace(
        /fs\.readFile\(\(0, path_1\.join\)\(__dirname, "\.\.", "main\.wasm\.gz"\)\)/,
        `Promise.resolve(globalThis.__hdrPayload('${WASM}'))`,
      )
      if (patched === src) throw new Error('hcl2json changed: the wasm loader was not found to inline')
      return { contents: patched, loader: 'js', resolveDir: dirname(args.path) }
    })
  },
}

/**
 * Heavy packages that a task loads with `await import()` only when it needs them (the AWS SDK, the
 * HCL parser) are bundled on their own and embedded as data, compiled on first use (new
 * Function), once: V8 then reads a string instead of pre-parsing ~4.8 MB of JavaScript on every
 * start, so `--help` and the runs that never touch S3 do not pay for it. Plain JavaScript is
 * brotli-compressed too (the SDK: 1.6 MB → about 0.2 MB to read at start); the HCL parser is mostly
 * its gzipped wasm already, which brotli cannot shrink, so it stays a plain string.
 * Measured in docs/benchmarks.md (start-up).
 */
const LAZY: Record<string, { compress: boolean }> = {
  '@aws-sdk/client-s3': { compress: true },
  '@cdktf/hcl2json': { compress: false },
}
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
  const source = LAZY[pkg]!.compress
    ? `require('node:zlib').brotliDecompressSync(Buffer.from(${JSON.stringify(brotliCompressSync(code).toString('base64'))}, 'base64')).toString()`
    : JSON.stringify(code)
  const loader = `const m = { exports: {} };
new Function('module', 'exports', 'require', ${source})(m, m.exports, require);
module.exports = m.exports;`
  lazySources.set(pkg, loader)
  return loader
}
const lazyPackages: Plugin = {
  name: 'lazy-packages',
  setup(b) {
    const filter = new RegExp(`^(${Object.keys(LAZY).map((p) => p.replace(/[/.]/g, (c) => `\\${c}`)).join('|')})$`)
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
  // the payload appended after the code (see payloadComment): found from the end, decoded once
  "globalThis.__hdrPayload = (name) => { const text = require('node:fs').readFileSync(new URL(import.meta.url), 'latin1'); const tag = '/*@hdr-payload:' + name + ':'; const at = text.lastIndexOf(tag); if (at < 0) throw new Error('this bundle lacks its ' + name + ' payload: rebuild it with npm run bundle'); return Buffer.from(text.slice(at + tag.length, text.indexOf('*/', at)), 'base64'); };",
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
  if (new RegExp(`__hdrPayload\\(\\\\?["']${WASM}`).test(text)) text += payloadComment() // quoted as esbuild prints it
  writeFileSync(out, text)
  process.stdout.write(`${out}\n`)
}
