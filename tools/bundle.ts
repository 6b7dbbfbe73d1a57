// npm run bundle: one self-contained dist/<task>.mjs per script, runnable with bare `node` >= 20 and no
// node_modules. Node 20, not 18: the AWS SDK v3 (restore:state, verify:backups --states) requires it, so
// the bundles target node20 and their first lines refuse an older node with one sentence (exit 4)
// instead of failing somewhere inside the SDK. (Proxmox VE 8's Debian ships Node 18: install Node 20+
// from NodeSource or run the tasks from the operator's machine.) Measured gotchas handled here:
// zx needs `require` in ESM (createRequire banner; esbuild keeps the source shebang first), and the HCL parser's
// wasm (read from disk next to the package) is inlined as base64.
import { build, type Plugin } from 'esbuild'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import tasks from '../tasks.json' with { type: 'json' }

const require = createRequire(import.meta.url)
const hclDir = dirname(dirname(require.resolve('@cdktf/hcl2json')))

const inlineHclWasm: Plugin = {
  name: 'inline-hcl2json-wasm',
  setup(b) {
    b.onLoad({ filter: /@cdktf[\\/]hcl2json[\\/]lib[\\/]bridge\.js$/ }, (args) => {
      const wasm = readFileSync(join(hclDir, 'main.wasm.gz')).toString('base64')
      const src = readFileSync(args.path, 'utf8')
      const patched = src.replace(
        /fs\.readFile\(\(0, path_1\.join\)\(__dirname, "\.\.", "main\.wasm\.gz"\)\)/,
        `Promise.resolve(Buffer.from(${JSON.stringify(wasm)}, "base64"))`,
      )
      if (patched === src) throw new Error('hcl2json changed: the wasm loader was not found to inline')
      return { contents: patched, loader: 'js', resolveDir: dirname(args.path) }
    })
  },
}

/** The Node.js major version the bundles need and target: package.json's engines (test/bundle.test.ts). */
const NODE_MAJOR = 20

const banner = [
  "import { createRequire as __hdrCreateRequire } from 'node:module';",
  'const require = __hdrCreateRequire(import.meta.url);',
  `if (Number(process.versions.node.split('.')[0]) < ${NODE_MAJOR}) { process.stderr.write('✗ homelab-dr needs Node.js ${NODE_MAJOR} or later; this is Node.js ' + process.versions.node + '. Nothing was changed.\\n  Install Node.js ${NODE_MAJOR}+ (https://nodejs.org, or NodeSource packages on Proxmox/Debian).\\n'); process.exit(4); }`,
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
    plugins: [inlineHclWasm],
    // hcl2json's Go bridge does `globalThis.performance ??= require("performance")`: never reached on Node >= 16.
    external: ['performance'],
    legalComments: 'none',
    logLevel: 'warning',
  })
  process.stdout.write(`${out}\n`)
}
