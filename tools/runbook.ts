// npm run runbook: writes docs/disaster-recovery.md, the printable runbook, from tasks.json (through
// lib/dr.ts). test/dr.test.ts fails when the file is out of date. `--check` only compares.
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { runbook } from '../lib/dr.ts'

export const RUNBOOK_FILE = join(import.meta.dirname, '..', 'docs', 'disaster-recovery.md')

if (import.meta.url === `file://${process.argv[1]}`) {
  const text = runbook()
  if (process.argv.includes('--check')) {
    const same = readFileSync(RUNBOOK_FILE, 'utf8') === text
    process.stdout.write(same ? 'docs/disaster-recovery.md is up to date\n' : 'docs/disaster-recovery.md is out of date: run npm run runbook\n')
    process.exitCode = same ? 0 : 1
  } else {
    writeFileSync(RUNBOOK_FILE, text)
    process.stdout.write(`wrote ${RUNBOOK_FILE}\n`)
  }
}
