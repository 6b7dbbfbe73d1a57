// dr:check against the lab (US6.3): the real node, guests, S3 and monitoring stack; each check a line,
// exit 0 only when every one holds, and the failures named when the lab is broken on purpose.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawnSync } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import { runTask } from '../helpers.ts'
import { FIXTURE, LAB_DIR, labUp } from '../lab/lab.ts'
import * as node from '../lab/node.ts'
import * as monitoring from '../lab/monitoring.ts'
import { terraformEnv } from '../lab/s3.ts'
import { commandLine } from '../../lib/ssh.ts'

const NOW = '2026-11-25T12:00:00' // the backups' day, so they are fresh (HDR_NOW)
const STATE_KEY = `dr-check-test/${randomUUID()}/terraform.tfstate`

/** A copy of the fixture homelab with one environment (prod) whose state lives under this test's own key. */
function homelab(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hdr-drcheck-tf-'))
  cpSync(FIXTURE, dir, { recursive: true, filter: (p) => !p.includes('.terraform') && !/\.tfstate/.test(p) })
  for (const e of ['lab', 'minio', 'monitoring']) rmSync(join(dir, 'environments', e), { recursive: true, force: true })
  const main = join(dir, 'environments', 'prod', 'main.tf')
  writeFileSync(main, readFileSync(main, 'utf8').replace(/key\s*=\s*"[^"]*"/, `key = "${STATE_KEY}"`))
  return dir
}
const TF = homelab()
const check = (args: string[] = []) => runTask('dr:check', args, { env: { HOMELAB_TF_DIR: TF, HDR_NOW: NOW }, timeoutMs: 120_000 })
const onNode = (...argv: string[]) => {
  const r = spawnSync('ssh', [...node.sshArgs(LAB_DIR), 'pve', commandLine(argv)], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`)
}
const lines = (out: string) => out.split('\n').filter((l) => /^[✓✗] /.test(l) && !/ checks (passed|failed) in /.test(l))

/** The fixture node without VM 102 (a guest with no backup at all), and prod's state applied. */
async function healthyLab(): Promise<void> {
  await node.reset(LAB_DIR)
  onNode('qm', 'destroy', '102')
  for (const args of [['init', '-input=false'], ['apply', '-auto-approve', '-input=false']]) {
    const r = spawnSync('terraform', [`-chdir=${join(TF, 'environments', 'prod')}`, ...args], { env: { ...terraformEnv(LAB_DIR, `drcheck-${process.pid}`), TF_DATA_DIR: undefined }, encoding: 'utf8' })
    if (r.status !== 0) throw new Error(`terraform ${args[0]}: ${r.stderr}`)
  }
}

test.before(async () => {
  await labUp()
  await healthyLab()
})
test.after(() => rmSync(TF, { recursive: true, force: true }))

test('US6.3 a healthy lab: one line per check, all hold, exit 0', async () => {
  const r = await check()
  if (process.env.HDR_DEBUG) process.stderr.write(r.stdout)
  assert.equal(lines(r.stdout).map((l) => l.replace(/ \(hostname [^)]*\)/, '')), [
    "✓ node pve: reachable over SSH (root@127.0.0.2:2222)",
    '✓ VM 101 (web01): running, 10.251.0.101 answers ping and SSH',
    '✓ CT 110 (dns01): running, 10.251.0.110 answers ping and SSH',
    '✓ CT 120 (minio): running, 127.0.0.4 answers ping (its services are checked below)',
    '✓ VM 200 (monitoring): running, 127.0.0.5 answers ping (its services are checked below)',
    '✓ S3 answers on http://127.0.0.4:9000',
    '✓ bucket tfstate: versioning Enabled',
    '✓ bucket backups: versioning Enabled',
    '✓ state prod: serial 1, lineage kept, terraform init works',
    '✓ Docker services on root@127.0.0.5: 4 running: prometheus, alertmanager, grafana, node-exporter',
    '✓ Prometheus ready',
    '✓ Prometheus targets up: 4/4: alertmanager, grafana, node, prometheus',
    '✓ Alertmanager ready',
    '✓ Alertmanager active in Prometheus: http://127.0.0.5:9093/api/v2/alerts',
    '✓ Grafana healthy: version 10.4.2, database ok',
    '✓ Grafana datasources reachable: Prometheus ok, Alertmanager ok',
    '✓ Grafana dashboards: 3: Homelab overview, Node Exporter Full, Backups',
    '✓ backup job backup-daily: enabled, 03:00 to local',
    '✓ backup of VM 101 (web01): newest good backup 9 h old',
    '✓ backup of CT 110 (dns01): newest good backup 9 h old',
    '✓ backup of CT 120 (minio): newest good backup 9 h old',
    '✓ backup of VM 200 (monitoring): newest good backup 9 h old',
  ])
  assert.match(r.stdout, /^✓ The lab is healthy: 22 checks passed in 0:\d\d\.$/m)
  assert.is(r.code, 0)
})

test('US6.3 --json and --metrics: the same checks for machines and for Prometheus (cron)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hdr-drcheck-metrics-'))
  try {
    const prom = join(dir, 'homelab_dr_check.prom')
    const r = await check(['--json', '--metrics', prom])
    assert.is(r.code, 0)
    const doc = JSON.parse(r.stdout) as { ok: boolean; facts: { checks: Array<{ area: string; name: string; ok: boolean }> } }
    assert.is(doc.ok, true)
    assert.is(doc.facts.checks.length, 22)
    const text = readFileSync(prom, 'utf8')
    assert.match(text, 'homelab_dr_check_ok{area="guests",check="VM 101 (web01)"} 1\n')
    assert.match(text, 'homelab_dr_check_failed{area="monitoring"} 0\n')
    assert.match(text, 'homelab_dr_check_exit_code 0\n')
    assert.match(text, /^homelab_dr_check_last_run_timestamp_seconds \d{10}$/m)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('US6.3 a broken lab: a stopped guest that should run, the monitoring stack down, a stale backup — each named, exit 1', async () => {
  onNode('qm', 'stop', '101')
  await monitoring.stop(LAB_DIR)
  try {
    const r = await runTask('dr:check', [], { env: { HOMELAB_TF_DIR: TF, HDR_NOW: '2026-11-27T12:00:00' }, timeoutMs: 120_000 })
    const failed = lines(r.stdout).filter((l) => l.startsWith('✗'))
    assert.equal(failed.map((l) => l.replace(/: .*/, '')), [
      '✗ VM 101 (web01)', '✗ Docker services on root@127.0.0.5', '✗ Prometheus ready', '✗ Prometheus targets up', '✗ Alertmanager ready',
      '✗ Alertmanager active in Prometheus', '✗ Grafana healthy', '✗ Grafana datasources reachable', '✗ Grafana dashboards',
      '✗ backup of VM 101 (web01)', '✗ backup of CT 110 (dns01)', '✗ backup of CT 120 (minio)', '✗ backup of VM 200 (monitoring)',
    ])
    assert.ok(failed.includes('✗ VM 101 (web01): stopped, but it should run (onboot: 1)'), failed.join('\n'))
    assert.ok(failed.includes('✗ backup of VM 101 (web01): stale: newest good backup is 2 d 9 h old (max 26 h)'), failed.join('\n'))
    assert.match(r.stdout, /^✗ 13 of 22 checks failed in 0:\d\d: VM 101 \(web01\), Docker services on root@127\.0\.0\.5, Prometheus ready, Prometheus targets up, Alertmanager ready, Alertmanager active in Prometheus, Grafana healthy, Grafana datasources reachable, Grafana dashboards, backup of VM 101 \(web01\), backup of CT 110 \(dns01\), backup of CT 120 \(minio\), backup of VM 200 \(monitoring\)\.$/m)
    assert.match(r.stdout, '  Bring the guest back: npm run restore:vm -- <vmid> (or npm run dr -- --only <vmid>).\n  Rebuild the monitoring stack: npm run rebuild:monitoring.\n')
    assert.is(r.code, 1)
  } finally {
    onNode('qm', 'start', '101')
    await monitoring.start(LAB_DIR)
  }
})

test.run()
