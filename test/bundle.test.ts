// Each script ships as ONE file that runs with bare `node` on a machine with no node_modules.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { execFileSync, spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs'
import { tempDir } from './tmp.ts'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import tasks from '../tasks.json' with { type: 'json' }
import { labEnv, labUp, FIXTURE, LAB_DIR } from './lab/lab.ts'
import { calls, lock, reset } from './lab/node.ts'

const empty = tempDir('hdr-bundle-')

test.before(() => {
  execFileSync('npm', ['run', '-s', 'bundle'], { stdio: 'pipe' })
  for (const t of tasks.tasks) copyFileSync(`dist/${t.id.replace(':', '-')}.mjs`, join(empty, `${t.id.replace(':', '-')}.mjs`))
})

const run = (file: string, args: string[], env: NodeJS.ProcessEnv = {}) =>
  spawnSync(process.execPath, [join(empty, file), ...args], { cwd: empty, encoding: 'utf8', env: { PATH: process.env.PATH, HOME: empty, ...env } })

test('every bundle answers --help with bare node and no node_modules', () => {
  for (const t of tasks.tasks) {
    const r = run(`${t.id.replace(':', '-')}.mjs`, ['--help'])
    assert.is(r.status, 0, `${t.id}: ${r.stderr}`)
    assert.ok(r.stdout.startsWith(`${t.id} — `), t.id)
    assert.ok(r.stdout.includes('Exit codes:'), t.id)
  }
})

test('the bundled HCL parser (inlined wasm) reads tfvars and reports file:line:col', () => {
  const repo = join(empty, 'homelab')
  mkdirSync(join(repo, 'environments', 'prod'), { recursive: true })
  writeFileSync(join(repo, 'terraform.tfvars'), 'proxmox_nodes = {\n  pve = { host = "127.0.0.2" port = 2222 }\n}\n')
  writeFileSync(join(repo, 'environments', 'prod', 'main.tf'), 'resource "terraform_data" "x" {}\n')
  const r = run('verify-backups.mjs', ['--dry-run', '--tf-dir', repo])
  assert.is(r.status, 4, r.stderr)
  assert.match(r.stderr, /^✗ Cannot parse terraform\.tfvars:2:\d+: Missing attribute separator/)
})

test('a bundle runs a real --dry-run against the lab node: the plan, and nothing changed', async () => {
  await lock(LAB_DIR)
  await labUp(['node'])
  await reset(LAB_DIR)
  const r = run('restore-vm.mjs', ['101', '--dry-run', '--tf-dir', FIXTURE], { HDR_SSH_CONFIG: labEnv().HDR_SSH_CONFIG, HDR_REPORTS_DIR: join(empty, 'reports') })
  assert.is(r.status, 0, r.stderr)
  assert.ok(r.stdout.includes('Restore VM 101 on node \'pve\' from the backup of 2026-11-25 03:00:02\n'), r.stdout)
  assert.ok(r.stdout.includes('[dry-run] Restore VM 101 from vzdump-qemu-101-2026_11_25-03_00_02.vma.zst: qmrestore local:backup/vzdump-qemu-101-2026_11_25-03_00_02.vma.zst 101 --force 1\n'))
  assert.ok(r.stdout.includes('Dry run: nothing was changed.'))
  const mutating = calls(LAB_DIR).filter((c) => ['qmrestore', 'vzdump'].includes(c.argv[0]?.split('/').at(-1) ?? '') || ['stop', 'start', 'restore'].includes(c.argv[1] ?? ''))
  assert.equal(mutating, [])
})

test.run()
