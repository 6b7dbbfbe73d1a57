// lib/monitoring.ts: `docker compose ps --format json` in both shapes Compose prints, and where the
// stack answers from the fixture's tfvars (monitoringSite).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { join } from 'node:path'
import { parseComposePs, monitoringSite } from '../lib/monitoring.ts'
import { loadConfig } from '../lib/config.ts'
import { DrError } from '../lib/errors.ts'

// Compose ≥ 2.21: one object per line (abridged from the lab's docker simulator, which follows it)
const LINES = [
  '{"Command":"\\"/bin/prometheus\\"","ExitCode":0,"Health":"","Name":"monitoring-prometheus-1","Service":"prometheus","State":"running","Status":"Up 2 hours"}',
  '{"Command":"\\"/bin/grafana\\"","ExitCode":1,"Health":"","Name":"monitoring-grafana-1","Service":"grafana","State":"exited","Status":"Exited (1) 3 seconds ago"}',
  '{"Name":"monitoring-alertmanager-1","Service":"alertmanager","State":"running","Health":"unhealthy","Status":"Up 5 minutes (unhealthy)"}',
].join('\n') + '\n'
// Compose < 2.21: one JSON array
const ARRAY = '[{"Name":"monitoring-prometheus-1","Service":"prometheus","State":"running","Health":"healthy","Status":"Up 2 hours (healthy)"}]\n'

test('parseComposePs: JSON lines (Compose ≥ 2.21)', () => {
  assert.equal(parseComposePs(LINES), [
    { service: 'prometheus', state: 'running', health: '', status: 'Up 2 hours' },
    { service: 'grafana', state: 'exited', health: '', status: 'Exited (1) 3 seconds ago' },
    { service: 'alertmanager', state: 'running', health: 'unhealthy', status: 'Up 5 minutes (unhealthy)' },
  ])
})

test('parseComposePs: one array (older Compose), empty output, and text that is not JSON', () => {
  assert.equal(parseComposePs(ARRAY), [{ service: 'prometheus', state: 'running', health: 'healthy', status: 'Up 2 hours (healthy)' }])
  assert.equal(parseComposePs('\n'), [])
  assert.throws(() => parseComposePs('NAME  IMAGE  SERVICE\n'), (e: unknown) => e instanceof DrError && /not JSON: "NAME  IMAGE  SERVICE"/.test(e.message))
})

test('monitoringSite: URLs, the VM\'s SSH login and the Grafana login from the fixture', async () => {
  const cfg = await loadConfig(join(import.meta.dirname, 'fixtures', 'homelab'))
  const site = monitoringSite(cfg)
  assert.equal({ ...site, grafanaAuth: site.grafanaAuth?.slice(0, 6) }, {
    vmid: 200, ip: '127.0.0.5',
    prometheus: 'http://127.0.0.5:9090', alertmanager: 'http://127.0.0.5:9093', grafana: 'http://127.0.0.5:3000',
    ssh: { user: 'root', port: 2222 }, composeDir: '/opt/monitoring', services: undefined, grafanaAuth: 'Basic ',
  })
  assert.is(site.grafanaAuth, `Basic ${Buffer.from('admin:admin').toString('base64')}`)
  cfg.vars.set('monitoring_ssh_port', { value: 70000, file: 'terraform.tfvars' })
  assert.throws(() => monitoringSite(cfg), /monitoring_ssh_port = 70000 in terraform.tfvars: expected a port from 1 to 65535\./)
})

test.run()
