// Runs every test file (each in its own process, one after another: lab tests share the lab) and
// ends with the line CI reads: `N passed, M failed`. Usage: npm test [-- PATH_OR_SUBSTRING…]
// A file that crashes, or prints no uvu totals, counts as failed. Under CI=true a skipped test fails.
import { spawnSync } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { LAB_DIR } from './lab/lab.ts'
import { lock } from './lab/node.ts'

const root = join(import.meta.dirname, '..')
const filters = process.argv.slice(2)

function find(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n)
    if (n === 'node_modules' || n === 'fixtures') return []
    return statSync(p).isDirectory() ? find(p) : n.endsWith('.test.ts') ? [p] : []
  })
}

// Unit tests first (fast feedback), then the lab, then the acceptance tests of each task.
const order = (f: string) => (f.includes('/acceptance/') ? 2 : f.includes('/lab/') ? 1 : 0)
const files = find(join(root, 'test'))
  .map((f) => relative(root, f))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort((a, b) => order(a) - order(b) || a.localeCompare(b))

// The lab is one set of fixed addresses: hold it for the whole run (children inherit the lock),
// so a benchmark or another run cannot reset it under a test.
await lock(LAB_DIR, 30 * 60_000)
process.env.HDR_LAB_LOCKED_BY = String(process.pid)

let passed = 0
let failed = 0
let skipped = 0
const broken: string[] = []
const t0 = Date.now()
for (const file of files) {
  const started = Date.now()
  const r = spawnSync(process.execPath, ['--import', 'tsx', file], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
    timeout: 10 * 60_000,
    maxBuffer: 64 * 1024 * 1024,
  })
  const out = (r.stdout ?? '') + (r.stderr ?? '')
  const num = (label: string) => Number(new RegExp(`${label}:\\s+(\\d+)`).exec(out)?.[1] ?? NaN)
  const total = num('Total')
  const ok = num('Passed')
  const skip = num('Skipped')
  const secs = ((Date.now() - started) / 1000).toFixed(1)
  if (Number.isNaN(total) || Number.isNaN(ok)) {
    failed++
    broken.push(file)
    process.stdout.write(`✗ ${file}: no test results (exit ${r.status ?? r.signal}) ${secs}s\n${indent(out)}\n`)
    continue
  }
  passed += ok
  skipped += skip || 0
  const bad = total - ok - (skip || 0) + (r.status !== 0 && total === ok ? 1 : 0)
  failed += bad
  if (bad > 0 || r.status !== 0) broken.push(file)
  process.stdout.write(`${bad > 0 ? '✗' : '✓'} ${file}: ${ok}/${total} passed${skip ? `, ${skip} skipped` : ''} ${secs}s\n`)
  if (bad > 0 || r.status !== 0) process.stdout.write(indent(out) + '\n')
}
if (process.env.CI === 'true' && skipped > 0) {
  failed += skipped
  process.stdout.write(`✗ ${skipped} skipped test(s): no suite may skip in CI\n`)
}
process.stdout.write(`\n${files.length} files in ${((Date.now() - t0) / 1000).toFixed(0)}s${broken.length ? `; failing: ${broken.join(', ')}` : ''}\n`)
process.stdout.write(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`)
process.exitCode = failed > 0 || files.length === 0 ? 1 : 0

function indent(s: string): string {
  return s.trimEnd().split('\n').slice(-60).map((l) => `    ${l}`).join('\n')
}
