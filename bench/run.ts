// npm run bench [-- --quick]: brings the lab up if needed, runs each scenario several times, writes
// bench/results.json and the table in docs/benchmarks.md. Medians of several runs, ratios taken in
// the same run; never a pass/fail test (CI runs one quick iteration so it cannot rot).
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { parseArgs } from 'node:util'
import { startup } from './startup.ts'
import { restoreState } from './restore-state.ts'
import { restoreVm } from './restore-vm.ts'
import { rebuildMonitoring } from './rebuild-monitoring.ts'
import { rebuildMinio } from './rebuild-minio.ts'
import { verifyBackups } from './verify-backups.ts'
import { restoreTest } from './restore-test.ts'
import { drDrill } from './dr.ts'
import type { Row } from './measure.ts'
import { LAB_DIR } from '../test/lab/lab.ts'
import { lock } from '../test/lab/node.ts'

const { values } = parseArgs({ options: { quick: { type: 'boolean' }, only: { type: 'string' } }, strict: true })
const iterations = values.quick ? 1 : 5

type Scenario = { name: string; run: (n: number) => Promise<Row[]> | Row[] }
const scenarios: Scenario[] = [
  { name: 'start-up', run: startup },
  { name: 'restore:state', run: restoreState },
  { name: 'restore:vm', run: restoreVm },
  { name: 'rebuild:minio', run: rebuildMinio },
  { name: 'rebuild:monitoring', run: rebuildMonitoring },
  // --quick: fewer and smaller files (2 archives of 16–24 MiB; 10 and 100 listed files)
  { name: 'verify:backups', run: (n) => verifyBackups(n, Boolean(values.quick)) },
  { name: 'restore-test', run: restoreTest }, // verify:backups --restore-test: overhead per test restore
  // the drill takes about a minute per run: at most 3 runs
  { name: 'dr drill', run: (n) => drDrill(Math.min(n, 3)) },
]

// The lab is shared with the tests: hold it (children inherit the lock).
await lock(LAB_DIR, 30 * 60_000)
process.env.HDR_LAB_LOCKED_BY = String(process.pid)

const rows: Row[] = []
for (const s of scenarios) {
  if (values.only && !s.name.includes(values.only)) continue
  process.stderr.write(`bench: ${s.name} (${iterations}×)…\n`)
  rows.push(...(await s.run(iterations)))
}

const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`
const date = new Date().toISOString().slice(0, 10)
const fmt = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2))
const table = [
  '| scenario | metric | median | min | max | unit | goal | met |',
  '|---|---|---|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.scenario} | ${r.metric} | ${fmt(r.stat.median)} | ${fmt(r.stat.min)} | ${fmt(r.stat.max)} | ${r.unit} | ${r.goal ?? ''} | ${r.met === undefined ? '' : r.met ? 'yes' : '**no**'} |`),
].join('\n')
process.stdout.write(`${table}\n`)
if (!values.quick) {
  // --only NAME replaces that scenario's rows and keeps the others' (with the date each was measured).
  type Results = { machine: string; date: string; iterations: number; rows: Row[]; dates?: Record<string, string> }
  const old: Results | undefined = values.only && existsSync('bench/results.json') ? JSON.parse(readFileSync('bench/results.json', 'utf8')) as Results : undefined
  const fresh = new Set(rows.map((r) => r.scenario))
  const dates: Record<string, string> = { ...(old?.dates ?? Object.fromEntries((old?.rows ?? []).map((r) => [r.scenario, old!.date]))), ...Object.fromEntries([...fresh].map((s) => [s, date])) }
  const stale = (r: Row) => !fresh.has(r.scenario)
  const at = old ? old.rows.findIndex((r) => !stale(r)) : -1 // the new rows go where the old ones were
  const merged = !old ? rows : at < 0 ? [...old.rows, ...rows] : [...old.rows.slice(0, at).filter(stale), ...rows, ...old.rows.slice(at).filter(stale)]
  writeFileSync('bench/results.json', JSON.stringify({ machine, date, iterations, rows: merged, ...(old ? { dates } : {}) }, null, 2) + '\n')
  process.stderr.write('bench: wrote bench/results.json; update docs/benchmarks.md with the table above\n')
}
