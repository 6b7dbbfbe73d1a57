// docs/monitoring/: the Grafana dashboard and the Prometheus alert rules name only metrics that
// verify:backups and dr:check really write (their renderers, fed real items), and promtool accepts
// the rules. The rules' behaviour is checked with promtool's own rule tests (a stale backup fires).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { renderCheckMetrics, renderMetrics } from '../lib/metrics.ts'
import type { Item } from '../lib/verify.ts'

const DIR = join(import.meta.dirname, '..', 'docs', 'monitoring')
const RULES = join(DIR, 'homelab-dr.rules.yml')
const DASHBOARD = join(DIR, 'homelab-dr-dashboard.json')

/** The metric families the tools write, from their own renderers. */
function written(): Set<string> {
  const items: Item[] = [
    { kind: 'file', node: 'pve', vmid: 101, type: 'qemu', volid: 'local:backup/x.vma.zst', storage: 'local', file: 'x.vma.zst', size: 10, ctime: 1, status: 'ok', checks: [] } as unknown as Item,
    { kind: 'guest', vmid: 101, type: 'qemu', name: 'web01', maxAgeHours: 26, status: 'ok', detail: '' } as unknown as Item,
    { kind: 'state', env: 'prod', bucket: 'tfstate', key: 'k', versionId: 'v', lastModified: '-', isLatest: true, size: 1, status: 'ok', checks: [] } as unknown as Item,
  ]
  const text = renderMetrics(items, { finishedAt: 0, durationSeconds: 1, exitCode: 0 }) +
    renderCheckMetrics([{ area: 'node', name: 'node pve', ok: true }], { finishedAt: 0, durationSeconds: 1, exitCode: 0 })
  return new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!))
}

const metricsIn = (expr: string) => [...expr.matchAll(/\bhomelab_dr_[a-z_]+/g)].map((m) => m[0])

test('promtool check rules accepts the alert rules', () => {
  const r = spawnSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8' })
  assert.is(r.status, 0, r.stderr + r.stdout)
  assert.match(r.stdout, 'SUCCESS: 9 rules found')
})

test('every alert rule names only metrics the tools write, and covers stale backup, failed verification, dr:check failing', () => {
  const known = written()
  const exprs = [...readFileSync(RULES, 'utf8').matchAll(/^\s+- alert: (\S+)\n\s+expr: (.+)$/gm)].map((m) => [m[1]!, m[2]!] as const)
  assert.equal(exprs.map(([a]) => a), [
    'HomelabDrBackupStale', 'HomelabDrBackupOlderThanMaxAge', 'HomelabDrBackupVerificationFailed', 'HomelabDrStateVerificationFailed',
    'HomelabDrVerifyFailing', 'HomelabDrVerifyNotRunning', 'HomelabDrCheckFailing', 'HomelabDrCheckItemFailing', 'HomelabDrCheckNotRunning',
  ])
  for (const [alert, expr] of exprs) {
    assert.ok(metricsIn(expr).length > 0, `${alert} names a homelab_dr metric`)
    for (const m of metricsIn(expr)) assert.ok(known.has(m), `${alert}: ${m} is not written by verify:backups or dr:check`)
  }
})

test('the Grafana dashboard: a valid model whose every query names a metric the tools write', () => {
  const d = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { uid: string; title: string; panels: Array<{ id: number; title: string; gridPos: object; targets: Array<{ refId: string; expr: string }> }> }
  assert.is(d.uid, 'homelab-dr')
  assert.ok(d.panels.length >= 8)
  const known = written()
  const used = new Set<string>()
  for (const p of d.panels) {
    assert.ok(p.id && p.title && p.gridPos, `panel ${p.title}`)
    assert.ok(p.targets.length > 0, `${p.title} has a query`)
    for (const t of p.targets) {
      assert.ok(metricsIn(t.expr).length > 0, `${p.title}: ${t.expr}`)
      for (const m of metricsIn(t.expr)) { assert.ok(known.has(m), `${p.title}: ${m} is not written`); used.add(m) }
    }
  }
  assert.ok(used.has('homelab_dr_backup_last_good_timestamp_seconds'), 'the RPO per guest is shown')
  assert.ok(used.has('homelab_dr_check_ok'), 'dr:check is shown check by check')
})

test('promtool test rules: a stale backup and a failing dr:check fire their alerts; a healthy lab fires none', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hdr-rules-'))
  try {
    const file = join(dir, 'rules.test.yml')
    writeFileSync(file, [
      'rule_files:', `  - ${RULES}`, 'evaluation_interval: 1m', 'tests:', '  - interval: 1m', '    input_series:',
      `      - series: 'homelab_dr_backup_missing_or_stale{vmid="101",type="qemu"}'`, "        values: '1x40'",
      `      - series: 'homelab_dr_backup_missing_or_stale{vmid="110",type="lxc"}'`, "        values: '0x40'",
      `      - series: 'homelab_dr_check_exit_code'`, "        values: '0x5 1x30'",
      '    alert_rule_test:',
      '      - eval_time: 35m', '        alertname: HomelabDrBackupStale', '        exp_alerts:',
      '          - exp_labels: { severity: warning, vmid: "101", type: qemu }',
      '            exp_annotations:',
      '              summary: "Guest 101 has no good backup younger than its schedule allows"',
      '              description: "verify:backups found no backup of qemu 101 that passed verification within its maximum age (RPO). Check the backup job, then run: npm run verify:backups -- --vmid 101"',
      '      - eval_time: 10m', '        alertname: HomelabDrCheckFailing', '        exp_alerts: []',
      '      - eval_time: 25m', '        alertname: HomelabDrCheckFailing', '        exp_alerts:',
      '          - exp_labels: { severity: critical }',
      '            exp_annotations:',
      '              summary: "dr:check fails: the lab is not healthy (exit 1)"',
      '              description: "Failed checks per area: homelab_dr_check_failed. Run npm run dr:check to read each line."',
      '',
    ].join('\n'))
    const r = spawnSync('promtool', ['test', 'rules', file], { encoding: 'utf8' })
    assert.is(r.status, 0, r.stdout + r.stderr)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test.run()
