// The drill (US6.1–US6.3) in the lab: the lab wiped (guests destroyed, the S3 data wiped, the monitoring
// stack stopped and wiped), `dr --yes`, then dr:check exits 0; and the interrupted drill: dr killed in
// step 3, `dr --resume` finishes without redoing steps 1–2 (the node's call log).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn, spawnSync } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import { runTask, scriptOf } from '../helpers.ts'
import { FIXTURE, LAB_DIR, labEnv, labUp, ROOT } from '../lab/lab.ts'
import * as node from '../lab/node.ts'
import { terraformEnv } from '../lab/s3.ts'
import { commandLine } from '../../lib/ssh.ts'

const NOW = '2026-11-25T12:00:00'
const STATE_KEY = `dr-drill/${randomUUID()}/terraform.tfstate`
const TF = (() => {
  const dir = mkdtempSync(join(tmpdir(), 'hdr-drill-tf-'))
  cpSync(FIXTURE, dir, { recursive: true, filter: (p) => !p.includes('.terraform') && !/\.tfstate/.test(p) })
  for (const e of ['lab', 'minio', 'monitoring']) rmSync(join(dir, 'environments', e), { recursive: true, force: true })
  const main = join(dir, 'environments', 'prod', 'main.tf')
  writeFileSync(main, readFileSync(main, 'utf8').replace(/key\s*=\s*"[^"]*"/, `key = "${STATE_KEY}"`))
  return dir
})()
const TMP = mkdtempSync(join(tmpdir(), 'hdr-drill-'))
const ENV = () => ({ HOMELAB_TF_DIR: TF, HDR_NOW: NOW, HDR_REPORTS_DIR: join(TMP, 'reports'), HDR_STATE_DIR: join(TMP, 'state'), HDR_BOOT_TIMEOUT: '20', AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '' })
const onNode = (...argv: string[]) => spawnSync('ssh', [...node.sshArgs(LAB_DIR), 'pve', commandLine(argv)], { encoding: 'utf8' })
const calls = () => node.calls(LAB_DIR).map((c) => c.argv.join(' '))

/** The disaster: every guest destroyed (CT 120's S3 data and VM 200's stack wiped by the lab's hooks). */
async function wipeLab(): Promise<void> {
  await node.reset(LAB_DIR)
  onNode('qm', 'destroy', '102')
  for (const args of [['init', '-input=false', '-reconfigure'], ['apply', '-auto-approve', '-input=false']]) {
    const r = spawnSync('terraform', [`-chdir=${join(TF, 'environments', 'prod')}`, ...args], { env: { ...terraformEnv(LAB_DIR, 'drill'), TF_DATA_DIR: undefined }, encoding: 'utf8' })
    if (r.status !== 0) throw new Error(`terraform ${args[0]}: ${r.stderr}`)
  }
  const snap = await runTask('restore:state', ['snapshot'], { env: ENV() }) // the operator's nightly mirror
  assert.is(snap.code, 0, snap.output)
  for (const [tool, id] of [['qm', '101'], ['pct', '110'], ['pct', '120'], ['qm', '200']] as const) {
    onNode(tool, 'stop', id)
    onNode(tool, 'destroy', id, '--purge', '1')
  }
  rmSync(join(LAB_DIR, 'pve', 'calls.log'), { force: true })
  rmSync(join(TMP, 'reports'), { recursive: true, force: true })
}

test.before(async () => {
  await labUp()
})
test.after(() => {
  rmSync(TF, { recursive: true, force: true })
  rmSync(TMP, { recursive: true, force: true })
})

test('US6.1 US6.3 the drill: a wiped lab, dr --yes brings every service back in order, then dr:check exits 0', async () => {
  await wipeLab()
  const r = await runTask('dr', ['--yes'], { env: ENV(), timeoutMs: 600_000 })
  assert.is(r.code, 0, r.output.slice(-4000))
  const restores = calls().filter((c) => /^(pct restore|qmrestore) /.test(c)).map((c) => c.split(' ').slice(0, 3).join(' '))
  assert.equal(restores, ['pct restore 120', 'qmrestore local:backup/vzdump-qemu-200-2026_11_25-03_00_02.vma.zst 200', 'qmrestore local:backup/vzdump-qemu-101-2026_11_25-03_00_02.vma.zst 101', 'pct restore 110'].map((c) => c.split(' ').slice(0, 3).join(' ')))
  const check = await runTask('dr:check', [], { env: ENV(), timeoutMs: 120_000 })
  assert.is(check.code, 0, check.output)
})

test('US6.1 the interrupted drill: dr killed in step 3; dr --resume finishes without redoing steps 1–2 (calls.log)', async () => {
  await wipeLab()
  const child = spawn(process.execPath, ['--import', 'tsx', scriptOf('dr'), '--yes'], { cwd: ROOT, env: labEnv(ENV()), stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  await new Promise<void>((resolve) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d
      if (out.includes('→ npm run rebuild:monitoring')) child.kill('SIGINT')
    })
    child.on('close', () => resolve())
  })
  assert.match(out, 'Step 3/5 — Monitoring (rebuild:monitoring)')
  assert.ok(calls().some((c) => c.startsWith('pct restore 120 ')), 'step 1 ran before the kill')
  rmSync(join(LAB_DIR, 'pve', 'calls.log'), { force: true })
  const r = await runTask('dr', ['--yes', '--resume'], { env: ENV(), timeoutMs: 600_000 })
  assert.is(r.code, 0, r.output.slice(-4000))
  assert.match(r.stdout, /Resuming the run of .*: steps 1, 2 done, continuing at step 3 \(re-checked first\)\./)
  assert.not.match(r.stdout, 'Step 1/5')
  assert.not.match(r.stdout, 'Step 2/5')
  assert.not.ok(calls().some((c) => / 120\b/.test(c) && /^(pct (restore|create|start)|vzdump)/.test(c)), `MinIO not redone: ${calls().join('\n')}`)
  assert.ok(calls().some((c) => c.startsWith('qmrestore ') && / 101\b/.test(c)), 'step 4 ran after the resume')
})

test.run()
