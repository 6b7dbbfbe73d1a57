// The lab's monitoring VM answers like the real stack: Prometheus scrapes, Alertmanager is connected,
// Grafana (stand-in) is healthy with dashboards, and `docker compose ps` over ssh tells the truth.
//   node --import tsx test/lab/monitoring.test.ts
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import * as mon from './monitoring.ts'
import { defaultLabDir, reachable, waitFor } from './s3.ts'

const labDir = defaultLabDir()
const prom = `http://${mon.MON_HOST}:${mon.PORTS.prometheus}`
const grafana = `http://${mon.MON_HOST}:${mon.PORTS.grafana}`
const json = async <T>(url: string, init?: RequestInit): Promise<T> => await (await fetch(url, init)).json() as T

/** Run a command on the monitoring VM over ssh with the lab key. */
const ssh = (command: string): Promise<{ code: number, stdout: string, stderr: string }> => new Promise(ok => {
  execFile('ssh', ['-i', join(labDir, 'ssh', 'id_ed25519'), '-p', String(mon.PORTS.ssh), '-o', 'BatchMode=yes',
    '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-o', 'ConnectTimeout=5',
    `${process.env.USER ?? 'root'}@${mon.MON_HOST}`, command], { timeout: 30_000 },
  (err, stdout, stderr) => { ok({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr }) })
})
interface Row { Service: string, State: string, Name: string }
const composePs = async (flags = ''): Promise<Row[]> => {
  const r = await ssh(`docker compose ps ${flags} --format json`)
  assert.is(r.code, 0, r.stderr)
  return r.stdout.trim().split('\n').filter(Boolean).map(l => JSON.parse(l) as Row)
}
const states = (rows: Row[]): Record<string, string> => Object.fromEntries(rows.map(r => [r.Service, r.State]))

test.before(async () => { await mon.up(labDir) })

// A freshly started Prometheus lists no targets and no Alertmanager for ~5 s (its discovery manager
// throttles updates), like the real one: checks poll.
test('Prometheus scrapes its targets: prometheus, node, grafana, alertmanager all up', async () => {
  type Targets = { data: { activeTargets: Array<{ labels: Record<string, string>, health: string }> } }
  let health: Record<string, string> = {}
  await waitFor('every target up', 20_000, async () => {
    const t = await json<Targets>(`${prom}/api/v1/targets`)
    health = Object.fromEntries(t.data.activeTargets.map(x => [x.labels.job ?? '', x.health]))
    return Object.keys(health).length === 4 && Object.values(health).every(h => h === 'up')
  }).catch(() => undefined)
  assert.equal(health, { alertmanager: 'up', grafana: 'up', node: 'up', prometheus: 'up' })
})

test('Alertmanager is connected, and the Watchdog alert reaches it', async () => {
  let urls: string[] = []
  await waitFor('an active Alertmanager', 20_000, async () => {
    const am = await json<{ data: { activeAlertmanagers: Array<{ url: string }> } }>(`${prom}/api/v1/alertmanagers`)
    urls = am.data.activeAlertmanagers.map(a => a.url)
    return urls.length > 0
  }).catch(() => undefined)
  assert.equal(urls, [`http://${mon.MON_HOST}:${mon.PORTS.alertmanager}/api/v2/alerts`])
  let names: string[] = []
  await waitFor('Watchdog in Alertmanager', 20_000, async () => {
    const alerts = await json<Array<{ labels: Record<string, string> }>>(`http://${mon.MON_HOST}:${mon.PORTS.alertmanager}/api/v2/alerts`)
    names = alerts.map(a => a.labels.alertname ?? '')
    return names.includes('Watchdog')
  }).catch(() => undefined)
  assert.ok(names.includes('Watchdog'), `alerts: ${names.join(', ')}`)
  assert.not.ok(names.includes('BackupStale'), 'the fresh textfile metric keeps BackupStale quiet')
})

test('Grafana stand-in: health like Grafana, dashboards behind basic auth', async () => {
  const h = await json<Record<string, string>>(`${grafana}/api/health`)
  assert.equal(Object.keys(h).sort(), ['commit', 'database', 'version'])
  assert.is(h.database, 'ok')
  assert.is(h.version, '10.4.2')
  assert.is((await fetch(`${grafana}/api/search`)).status, 401)
  const { user, password } = mon.grafanaLogin()
  const auth = { headers: { Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` } }
  const hits = await json<Array<{ uid: string, title: string, type: string, url: string }>>(`${grafana}/api/search`, auth)
  assert.equal(hits.map(d => d.title), ['Homelab overview', 'Node Exporter Full', 'Backups'])
  assert.ok(hits.every(d => d.type === 'dash-db' && d.url.startsWith(`/d/${d.uid}/`)))
})

test('docker compose ps over ssh reports each service’s real state', async () => {
  assert.equal(states(await composePs()), { prometheus: 'running', alertmanager: 'running', grafana: 'running', 'node-exporter': 'running' })
  await mon.stopService(labDir, 'grafana')
  assert.equal(states(await composePs('-a')), { prometheus: 'running', alertmanager: 'running', grafana: 'exited', 'node-exporter': 'running' })
  assert.not.ok((await composePs()).some(r => r.Service === 'grafana'), 'without -a, stopped services are not listed')
  const up = await ssh('docker compose up -d grafana')
  assert.is(up.code, 0, up.stderr)
  assert.is(states(await composePs()).grafana, 'running')
  assert.is((await fetch(`${grafana}/api/health`)).status, 200)
})

test('stop powers the VM off (no port answers), start brings it back', async () => {
  await mon.stop(labDir)
  for (const port of Object.values(mon.PORTS)) assert.is(await reachable(mon.MON_HOST, port), false, `port ${port} closed`)
  await mon.stop(labDir)
  await mon.start(labDir)
  for (const port of Object.values(mon.PORTS)) assert.is(await reachable(mon.MON_HOST, port), true, `port ${port} open`)
})

test('wipe deletes config and data; start brings up a fresh stack with the default config', async () => {
  await mon.wipe(labDir)
  const root = join(labDir, 'monitoring')
  assert.not.ok(existsSync(join(root, 'config')))
  assert.not.ok(existsSync(join(root, 'data')))
  assert.is(await reachable(mon.MON_HOST, mon.PORTS.prometheus), false)
  await mon.start(labDir)
  for (const f of ['prometheus.yml', 'rules.yml', 'alertmanager.yml', 'docker-compose.yml', 'grafana/dashboards.json']) assert.ok(existsSync(join(root, 'config', f)), f)
  assert.equal(states(await composePs()), { prometheus: 'running', alertmanager: 'running', grafana: 'running', 'node-exporter': 'running' })
})

test.run()
