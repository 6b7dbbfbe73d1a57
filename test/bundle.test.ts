// Each script ships as ONE file that runs with bare `node` on a machine with no node_modules.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { execFileSync, spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import tasks from '../tasks.json' with { type: 'json' }

const empty = mkdtempSync(join(tmpdir(), 'hdr-bundle-'))

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

test.run()
