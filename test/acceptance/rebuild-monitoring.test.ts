// rebuild:monitoring against the lab (US4, EF-002, EF-006, EF-007): the monitoring VM 200 is bound to
// the real Prometheus, Alertmanager, node-exporter and the Grafana stand-in on 127.0.0.5, so destroying
// it on the simulated node really stops and wipes them, and restoring it really brings them back.
// Effects are read from the node (calls.log, configs, dump folder) and from the services themselves.
import { test as uvuTest } from 'uvu'
import * as assert from 'uvu/assert'
import { spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runTask, type RunOpts } from '../helpers.ts'
import { FIXTURE, LAB_DIR, labUp } from '../lab/lab.ts'
import * as node from '../lab/node.ts'
import * as mon from '../lab/monitoring.ts'
import { commandLine } from '../../lib/ssh.ts'

const PVE = join(LAB_DIR, 'pve')
const DUMP = join(PVE, 'var/lib/vz/dump')
const CONF = join(PVE, 'etc/pve/nodes/pve/qemu-server/200.conf')
const BACKUP = 'vzdump-qemu-200-2026_11_25-03_00_02.vma.zst'
const PROM = `http://${mon.MON_HOST}:${mon.PORTS.prometheus}`
const AM = `http://${mon.MON_HOST}:${mon.PORTS.alertmanager}`
const temps: string[] = []

/** A copy of the fixture homelab (optionally edited), removed after the run. */
function homelab(edit: (dir: string) => void = () => {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'hdr-mon-tf-'))
  temps.push(dir)
  cpSync(FIXTURE, dir, { recursive: true, filter: (p) => !p.includes('.terraform') && !/\.tfstate/.test(p) })
  edit(dir)
  return dir
}
const TF = homelab()
const rebuild = (args: string[], opts: RunOpts = {}) =>
  runTask('rebuild:monitoring', args, { timeoutMs: 180_000, ...opts, env: { HOMELAB_TF_DIR: TF, HDR_BOOT_TIMEOUT: '20', ...opts.env } })

const calls = () => node.calls(LAB_DIR).map((c) => c.argv.join(' '))
const WRITES = /^(vzdump|qmrestore|pct restore|qm (start|stop|shutdown|destroy)|pct (start|stop|shutdown|destroy))\b/
const writes = () => calls().filter((c) => WRITES.test(c)).map((c) => c.split(' --notes-template')[0])
const onNode = (...argv: string[]) => {
  const r = spawnSync('ssh', [...node.sshArgs(LAB_DIR), 'pve', commandLine(argv)], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`)
  return r.stdout
}
const clearCalls = () => rmSync(join(PVE, 'calls.log'), { force: true })
const json = async <T>(url: string): Promise<T> => (await (await fetch(url, { signal: AbortSignal.timeout(3000) })).json()) as T
const answers = async (url: string) => fetch(url, { signal: AbortSignal.timeout(2000) }).then((r) => r.ok, () => false)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Alerts Alertmanager has received since it started (its own counter): proof the synthetic alert arrived. */
async function alertsReceived(): Promise<number> {
  const text = await (await fetch(`${AM}/metrics`)).text()
  return [...text.matchAll(/^alertmanager_alerts_received_total\{[^}]*\} (\d+)/gm)].reduce((s, m) => s + Number(m[1]), 0)
}
/** Every Prometheus target's health, by job. */
async function targets(): Promise<Record<string, string>> {
  const t = await json<{ data: { activeTargets: Array<{ labels: Record<string, string>; health: string }> } }>(`${PROM}/api/v1/targets`)
  return Object.fromEntries(t.data.activeTargets.map((x) => [x.labels.job ?? '', x.health]))
}
/** Waits (test side) until Prometheus scrapes every target and lists its Alertmanager, like a stack that has run a while. */
async function settled(): Promise<void> {
  for (let i = 0; i < 60; i++) {
    try {
      const h = await targets()
      const am = await json<{ data: { activeAlertmanagers: unknown[] } }>(`${PROM}/api/v1/alertmanagers`)
      if (Object.keys(h).length === 4 && Object.values(h).every((x) => x === 'up') && am.data.activeAlertmanagers.length > 0) return
    } catch { /* starting */ }
    await sleep(500)
  }
  throw new Error('the lab monitoring stack did not settle')
}
/** The node back to its fixture, the monitoring VM running a fresh stack. */
async function fresh(): Promise<void> {
  await node.reset(LAB_DIR)
  await mon.wipe(LAB_DIR)
  await mon.start(LAB_DIR)
  clearCalls()
}
/** The monitoring VM destroyed on the node: the stack stopped and its config and data wiped (hooks). */
function destroyVm(): void {
  onNode('qm', 'stop', '200')
  onNode('qm', 'destroy', '200', '--purge', '1')
  clearCalls()
}

/** HDR_ONLY=US4.3 runs only the tests whose name contains it. */
const test = (name: string, fn: () => Promise<void>) => {
  if (!process.env.HDR_ONLY || name.includes(process.env.HDR_ONLY)) uvuTest(name, fn)
}

uvuTest.before(async () => {
  await labUp(['node', 'monitoring'])
})
uvuTest.after(async () => {
  for (const d of temps) rmSync(d, { recursive: true, force: true })
})

// ---- US4 ----

test('US4.2 a healthy stack: every check a line, the synthetic alert reaches Alertmanager, nothing changed', async () => {
  await fresh()
  await settled()
  const received = await alertsReceived()
  const r = await rebuild([])
  assert.is(r.code, 0, r.output)
  for (const line of [
    "✓ Node 'pve' reachable over SSH (root@127.0.0.2:2222)",
    'Diagnosis of the monitoring stack (VM 200, 127.0.0.5):',
    '✓ VM 200 (monitoring) running\n',
    '✓ Docker services on root@127.0.0.5: 4 running: prometheus, alertmanager, grafana, node-exporter\n',
    '✓ Prometheus ready\n',
    '✓ Alertmanager ready\n',
    `✓ Alertmanager active in Prometheus: ${AM}/api/v2/alerts\n`,
    '✓ Synthetic alert through Alertmanager: HomelabDrSynthetic received, then expired\n',
    '✓ Grafana healthy: version 10.4.2, database ok\n',
    '✓ Grafana datasources reachable: Prometheus ok, Alertmanager ok\n',
    '✓ Grafana dashboards: 3: Homelab overview, Node Exporter Full, Backups\n',
    '✓ The monitoring stack is healthy (10 checks passed): nothing was changed.\n',
  ]) assert.match(r.stdout, line)
  assert.match(r.stdout, /✓ Prometheus targets up: 4\/4: (prometheus|node|grafana|alertmanager)(, (prometheus|node|grafana|alertmanager)){3}\n/)
  assert.equal(writes(), [])
  assert.ok((await alertsReceived()) > received, 'Alertmanager counted the synthetic alert')
  const active = await json<Array<{ labels: Record<string, string> }>>(`${AM}/api/v2/alerts`)
  assert.not.ok(active.some((a) => a.labels.alertname === 'HomelabDrSynthetic'), 'the synthetic alert was expired')
})

test('US4.1 the monitoring VM destroyed: restored from its latest backup, Docker services checked, targets up, alerts received', async () => {
  await fresh()
  destroyVm()
  assert.not.ok(existsSync(CONF))
  assert.not.ok(await answers(`${PROM}/-/ready`), 'Prometheus is down with its VM')
  assert.not.ok(existsSync(join(LAB_DIR, 'monitoring', 'config')), 'the stack was wiped')
  const r = await rebuild(['--yes'])
  assert.is(r.code, 0, r.output)
  assert.match(r.stdout, "✗ VM 200 running: VM 200 does not exist on node 'pve'")
  assert.match(r.stdout, 'Not healthy: VM 200 running.')
  assert.match(r.stdout, `Restore VM 200 from the backup of 2026-11-25 03:00:02? yes (--yes)`)
  assert.equal(writes(), [`qmrestore local:backup/${BACKUP} 200 --start 1`])
  assert.match(r.stdout, '✓ SSH login to root@127.0.0.5: hostname ')
  assert.match(r.stdout, 'The monitoring stack after the restore:\n✓ VM 200 (monitoring) running')
  assert.match(r.stdout, '✓ Docker services on root@127.0.0.5: 4 running: prometheus, alertmanager, grafana, node-exporter')
  assert.match(r.stdout, /✓ Prometheus targets up: 4\/4: /)
  assert.match(r.stdout, '✓ Synthetic alert through Alertmanager: HomelabDrSynthetic received, then expired')
  assert.match(r.stdout, `✓ VM 200 (monitoring) restored from ${BACKUP}: 10 checks passed (services, Prometheus targets, Alertmanager, Grafana).`)
  // the real services, seen from here
  assert.match(readFileSync(CONF, 'utf8'), 'name: monitoring')
  assert.equal(await targets(), { alertmanager: 'up', grafana: 'up', node: 'up', prometheus: 'up' })
  assert.ok((await alertsReceived()) > 0, 'the restored Alertmanager received the synthetic alert')
})

test('US4.2 a service that stays down after the restore is named, with its target: exit 5', async () => {
  await fresh()
  destroyVm()
  // something else holds node-exporter's port: the restored VM's node-exporter cannot start
  const squatter: Server = createServer((s) => s.destroy())
  await new Promise<void>((ok) => squatter.listen(mon.PORTS['node-exporter'], mon.MON_HOST, ok))
  try {
    const r = await rebuild(['--yes', '--wait', '4'])
    assert.is(r.code, 5, r.output)
    assert.match(r.stdout, /✗ Docker services on root@127\.0\.0\.5: node-exporter exited \(Exited \(0\) [^)]*\)\n/)
    assert.match(r.stdout, /✗ Prometheus targets up: 1 of 4 not up: node 127\.0\.0\.5:9100 down \([^)]+\)\n/)
    assert.match(r.stdout, `✗ VM 200 (monitoring) was restored from ${BACKUP}, but the stack is not fully back: Docker services on root@127.0.0.5: node-exporter exited`)
    assert.match(r.stdout, "Look on the VM: ssh -p 2222 root@127.0.0.5 'cd /opt/monitoring && docker compose ps --all && docker compose logs --tail 50'")
    assert.ok(await answers(`${PROM}/-/ready`), 'the rest of the stack is back')
  } finally {
    await new Promise((ok) => squatter.close(ok))
  }
})

test('US4.3 no backup: said plainly, the exact terraform command, metrics history lost; nothing changed (exit 4)', async () => {
  await fresh()
  destroyVm()
  const aside = mkdtempSync(join(tmpdir(), 'hdr-mon-dump-'))
  temps.push(aside)
  for (const f of readdirSync(DUMP).filter((f) => f.startsWith('vzdump-qemu-200-'))) renameSync(join(DUMP, f), join(aside, f))
  const r = await rebuild(['--yes'])
  assert.is(r.code, 4, r.output)
  const env = join(TF, 'environments', 'monitoring')
  assert.match(r.stdout, [
    'There is no backup of the monitoring VM (VM 200): it cannot be restored, only recreated from zero by Terraform:',
    `  terraform -chdir=${env} apply`,
    '  ! The metrics history is lost: Prometheus starts with an empty database; Alertmanager silences and anything changed by hand in Grafana are gone.',
  ].join('\n'))
  assert.match(r.stdout, `✗ No backup of VM 200 (monitoring) on storage 'local': nothing was changed. Recreate it from zero (metrics history lost) with: terraform -chdir=${env} apply\n  Or let homelab-dr run it (plan shown and confirmed first), then check the stack: npm run rebuild:monitoring -- --apply`)
  assert.equal(writes(), [])
  assert.not.ok(existsSync(CONF))
})

test('US4.3 --apply: terraform plan shown and confirmed, applied, the VM recreated from zero, then the same checks', async () => {
  await fresh()
  destroyVm()
  for (const f of readdirSync(DUMP).filter((f) => f.startsWith('vzdump-qemu-200-'))) rmSync(join(DUMP, f))
  // The operator's Terraform creates the VM on the node (here: its config, then `qm start` over ssh, as a
  // Proxmox provider would through the API); a local backend keeps this test's state to itself.
  const tf = homelab((dir) => {
    const env = join(dir, 'environments', 'monitoring')
    writeFileSync(join(env, 'backend_override.tf'), `terraform {\n  backend "local" {\n    path = "${join(dir, 'monitoring.tfstate')}"\n  }\n}\n`)
    writeFileSync(join(env, 'lab_vm.tf'), `# test only: stands in for the Proxmox provider creating VM ${200}
resource "terraform_data" "vm_on_node" {
  triggers_replace = [terraform_data.monitoring_vm.id]
  provisioner "local-exec" {
    command = <<-EOT
      printf '%s\\n' '#hdr-bind: monitoring' 'agent: 1' 'ipconfig0: ip=127.0.0.5/8,gw=127.0.0.1' 'memory: 4096' 'name: monitoring' 'net0: virtio=BC:24:11:00:02:00,bridge=vmbr0' 'ostype: l26' > "$HDR_LAB_DIR/pve/etc/pve/nodes/pve/qemu-server/200.conf"
      ssh -F "$HDR_SSH_CONFIG" pve qm start 200
    EOT
  }
}
`)
  })
  const r = await rebuild(['--apply', '--yes'], { env: { HOMELAB_TF_DIR: tf } })
  assert.is(r.code, 0, r.output)
  assert.match(r.stdout, `Recreate the monitoring VM with Terraform in ${join(tf, 'environments', 'monitoring')}`)
  assert.match(r.stdout, '✓ terraform plan')
  assert.match(r.stdout, 'Plan: 3 to add, 0 to change, 0 to destroy.')
  assert.match(r.stdout, 'to recreate the monitoring VM from zero? The metrics history is lost. yes (--yes)')
  assert.match(r.stdout, '✓ terraform apply')
  assert.match(r.stdout, '✓ The monitoring VM was recreated from zero by terraform apply: 10 checks passed. Its metrics history starts now.')
  assert.ok(existsSync(CONF))
  assert.equal(await targets(), { alertmanager: 'up', grafana: 'up', node: 'up', prometheus: 'up' })
})

// ---- consent, dry run, safety backup ----

test('EF-002 no terminal and no --yes: the plan, then a refusal; nothing changed (exit 3)', async () => {
  await fresh()
  onNode('qm', 'stop', '200')
  clearCalls()
  const r = await rebuild([])
  assert.is(r.code, 3, r.output)
  assert.match(r.stdout, '✗ VM 200 (monitoring) running: it is stopped')
  assert.match(r.stdout, "Restore VM 200 on node 'pve' from the backup of 2026-11-25 03:00:02")
  assert.match(r.stdout, '✗ Refusing to continue without confirmation: there is no terminal to ask on.')
  assert.equal(writes(), [])
  assert.match(onNode('qm', 'status', '200'), 'status: stopped')
})

test('EF-007 --dry-run on a stopped VM: the diagnosis and the whole plan with real facts; the node unchanged', async () => {
  await fresh()
  onNode('qm', 'stop', '200')
  clearCalls()
  const files = readdirSync(DUMP).sort()
  const r = await rebuild(['--dry-run'])
  assert.is(r.code, 0, r.output)
  assert.match(r.stdout, '  Target:          VM 200 (monitoring), stopped — will be overwritten')
  assert.match(r.stdout, '  Then:            start it and check: status running, ping 127.0.0.5, ssh root@127.0.0.5:2222, guest agent ping')
  assert.match(r.stdout, `[dry-run] Restore VM 200 from ${BACKUP} and start it: qmrestore local:backup/${BACKUP} 200 --force 1 --start 1`)
  assert.match(r.stdout, '[dry-run] Then the same checks of the stack (up to 120 s for the services)')
  assert.match(r.stdout, 'Dry run: nothing was changed. Run the same command without --dry-run to restore.')
  assert.equal(writes(), [])
  assert.ok(calls().includes(`pvesm path local:backup/${BACKUP}`) && calls().includes('vma verify -'), 'real facts were read')
  assert.equal(readdirSync(DUMP).sort(), files)
})

test('EF-006 --force on a healthy stack: a safety backup first, then restored over it and checked', async () => {
  await fresh()
  await settled()
  const files = readdirSync(DUMP)
  const r = await rebuild(['--force'])
  assert.is(r.code, 0, r.output)
  assert.match(r.stdout, 'Healthy, but --force was given: restoring anyway.')
  assert.equal(writes(), ['vzdump 200 --storage local --mode snapshot --compress zstd', 'qm stop 200', `qmrestore local:backup/${BACKUP} 200 --force 1 --start 1`])
  const safety = readdirSync(DUMP).filter((f) => !files.includes(f) && f.endsWith('.vma.zst'))
  assert.is(safety.length, 1)
  assert.is(readFileSync(join(DUMP, `${safety[0]}.notes`), 'utf8'), `homelab-dr safety backup of monitoring before rebuild:monitoring from ${BACKUP}`)
  assert.match(r.stdout, `  Safety backup of the guest as it was: local:backup/${safety[0]}`)
  assert.equal(await targets(), { alertmanager: 'up', grafana: 'up', node: 'up', prometheus: 'up' })
})

test('bad input changes nothing and says why', async () => {
  clearCalls()
  for (const [args, message] of [
    [['--wait', '2m'], '✗ Invalid --wait "2m": expected a number of seconds from 1 to 99999.'],
    [['--aply'], '✗ Unknown option --aply. Did you mean --apply?'],
    [['200'], '✗ Unexpected argument: 200.'],
  ] as const) {
    const r = await rebuild([...args])
    assert.is(r.code, 2, args.join(' '))
    assert.is(r.stderr.split('\n')[0], message)
  }
  assert.equal(calls(), [])
})

uvuTest.run()
