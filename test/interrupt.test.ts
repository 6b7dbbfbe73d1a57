// Signals (issue 12 item 6): one handler for SIGINT, SIGTERM and SIGHUP (lib/task.ts). It names the
// step it interrupted, tells what was done and what was started (never "nothing changed" after a
// change), writes the report (exit 3), closes the SSH master and its hdr-ssh-* folder, and stops the
// local program still running. Driven through a fixture task (test/fixtures/tasks/interrupt-task.ts).
//   node --import tsx test/interrupt.test.ts
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { labEnv, labUp, ROOT } from './lab/lab.ts'

const FIXTURE_TASK = join(ROOT, 'test', 'fixtures', 'tasks', 'interrupt-task.ts')
const base = mkdtempSync('/tmp/hdr-i') // short: the ssh ControlPath under it must fit a socket path
test.after(() => rmSync(base, { recursive: true, force: true }))

interface Run { code: number; out: string; dir: string; tmp: string; reports: string }
/** Runs the fixture; when `when` shows in its output, sends `signal`. */
function interrupt(signal: NodeJS.Signals, when: string, args: string[] = []): Promise<Run> {
  const dir = mkdtempSync(join(base, '/r'))
  const tmp = join(dir, 'tmp')
  const reports = join(dir, 'reports')
  mkdirSync(tmp)
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE_TASK, '--dir', dir, ...args], { cwd: ROOT, env: labEnv({ TMPDIR: tmp, HDR_REPORTS_DIR: reports }) })
  let out = ''
  let sent = false
  const watch = () => {
    if (!sent && out.includes(when) && existsSync(join(dir, 'pid'))) {
      sent = true
      child.kill(signal)
    }
  }
  child.stdout.on('data', (d: Buffer) => ((out += d), watch()))
  child.stderr.on('data', (d: Buffer) => ((out += d), watch()))
  const poll = setInterval(watch, 50)
  const kill = setTimeout(() => child.kill('SIGKILL'), 60_000)
  return new Promise((resolve) => child.on('close', (code) => {
    clearInterval(poll)
    clearTimeout(kill)
    resolve({ code: code ?? -1, out, dir, tmp, reports })
  }))
}

/** Running, not a zombie (PID 1 here never reaps: docs/lab.md). */
const alive = (pid: number) => {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}
const reportOf = (r: Run) => JSON.parse(readFileSync(join(r.reports, readdirSync(r.reports)[0]!), 'utf8')) as { exitCode: number; summary: string; facts: { interrupted?: { signal: string; during: string } }; steps: Array<{ title: string; status: string }> }

for (const signal of ['SIGTERM', 'SIGHUP', 'SIGINT'] as const) {
  test(`${signal} mid-run: exit 3, the step named, what changed told, report written, the local program stopped`, async () => {
    const r = await interrupt(signal, '✓ Write a')
    assert.is(r.code, 3, r.out)
    assert.ok(r.out.includes(`✗ Interrupted by ${signal} during 'Wait in a local program'`), r.out)
    assert.ok(r.out.includes('✗ Aborted! Done before the interruption: Write a. Started and not finished: Wait in a local program.'), r.out)
    assert.not.ok(r.out.includes('Nothing had been changed yet'), r.out)
    assert.not.ok(existsSync(join(r.dir, 'c')), 'the run went on after the signal')
    const doc = reportOf(r)
    assert.is(doc.exitCode, 3)
    assert.is(doc.facts.interrupted?.signal, signal)
    assert.is(doc.facts.interrupted?.during, 'Wait in a local program')
    assert.match(r.out, /Report: .*test-interrupt-.*\.json/)
    const pid = Number(readFileSync(join(r.dir, 'pid'), 'utf8'))
    await new Promise((res) => setTimeout(res, 300))
    assert.not.ok(alive(pid), `the local program ${pid} outlived the run`)
  })
}

test('SIGTERM with an SSH master open: the master is closed and no hdr-ssh-* folder is left', async () => {
  await labUp(['node'])
  const r = await interrupt('SIGTERM', '✓ Write a', ['--ssh'])
  assert.is(r.code, 3, r.out)
  assert.match(r.out, /node: \S+/)
  assert.equal(readdirSync(r.tmp).filter((n) => n.startsWith('hdr-ssh-')), [])
  const masters = spawnSync('pgrep', ['-f', r.tmp], { encoding: 'utf8' }).stdout.trim()
  assert.is(masters, '', `ssh master still running: ${masters}`)
})

test.run()
