#!/usr/bin/env node
// dr:check (US6.3) — is the lab back? One line per check; exit 0 only when every one holds.
// Read-only: it changes nothing, so it asks for no confirmation. Run it alone at any time (cron), or
// as the last step of `dr`.
//
//   npm run -s dr:check
//   npm run -s dr:check -- --json
//   npm run -s dr:check -- --metrics /var/lib/prometheus/node-exporter/homelab_dr_check.prom   # cron
//
// Exit codes: 0 every check holds · 1 a check failed · 4 no node answers · 2 usage.
import type { CommandSpec } from '../lib/args.ts'
import { loadConfig } from '../lib/config.ts'
import { DrError } from '../lib/errors.ts'
import { checkBackups, checkGuest, checkMinio, checkMonitoring, checkNodes, checkStates, coverage, type Line } from '../lib/health.ts'
import { renderCheckMetrics, writeAtomic } from '../lib/metrics.ts'
import { mark, say } from '../lib/output.ts'
import { Report } from '../lib/report.ts'
import { defineTask } from '../lib/task.ts'
import { clock } from '../lib/verify.ts'

const spec = {
  id: 'dr:check',
  summary: 'Final health check: every guest running and reachable, monitoring healthy, backups recent.',
  description: `US6.3. Read-only; asks nothing. One line per check, in this order:
1. every Proxmox node answers over SSH;
2. every guest a backup job covers (pvesh get /cluster/backup) exists, runs and answers ping + SSH,
   unless it is meant to be stopped (no onboot: 1 in its config; MinIO and monitoring must run);
3. MinIO answers, every bucket has versioning enabled, every environment's current state is valid
   JSON with serial and lineage, and terraform init works in it;
4. Prometheus scrapes all its targets, Alertmanager is connected, Grafana is healthy;
5. every backup job is enabled, and every guest's newest backup is younger than its schedule allows
   (the job's longest gap + 2 h; verify:backups checks the files themselves).
Exit 0 only when every check holds; 1 when one failed; 4 when no node answers.`,
  positionals: [],
  options: {
    metrics: { type: 'string', value: 'FILE', description: 'write Prometheus textfile-collector metrics to FILE (atomically)' },
  },
  examples: [
    'npm run -s dr:check',
    'npm run -s dr:check -- --json',
    'npm run -s dr:check -- --metrics /var/lib/prometheus/node-exporter/homelab_dr_check.prom',
  ],
} satisfies CommandSpec

export const task = defineTask(spec, async ({ values }) => {
  // Config
  const cfg = await loadConfig(values['tf-dir'])
  const report = new Report('dr:check')
  const started = Date.now()
  const now = process.env.HDR_NOW ? Math.floor(Date.parse(process.env.HDR_NOW) / 1000) : Math.floor(started / 1000) // HDR_NOW: tests
  const lines: Line[] = []
  const show = (l: Line) => {
    lines.push(l)
    say(`${l.ok ? mark.ok : mark.fail} ${l.name}${l.detail ? `: ${l.detail}` : ''}`)
  }
  const finish = (exitCode: number, summary: string, next: string[]) => {
    report.facts.checks = lines
    if (values.metrics && !values['dry-run']) {
      writeAtomic(values.metrics, renderCheckMetrics(lines, { finishedAt: Date.now(), durationSeconds: (Date.now() - started) / 1000, exitCode }))
      report.facts.metricsFile = values.metrics
    }
    return report.finish({ exitCode, summary, next })
  }

  // 1. Nodes
  const nodes = await checkNodes(cfg)
  nodes.lines.forEach(show)
  const pve = nodes.pves[0]
  if (!pve) return finish(4, `${mark.fail} No Proxmox node answers: nothing else can be checked.`, ['Check the network and the node, then run dr:check again.'])
  try {
    // 2. Guests the backup jobs cover (MinIO and monitoring included: they are guests too)
    const cov = await coverage(pve)
    report.facts.covered = cov.covered
    for (const l of await Promise.all(cov.covered.map((v) => checkGuest(pve, cfg, v)))) show(l)
    // 3. MinIO and the state; 4. monitoring (independent: side by side)
    const [minio, monitoring] = await Promise.all([checkMinio(cfg), checkMonitoring(cfg)])
    minio.forEach(show)
    if (minio[0]?.ok) (await checkStates(cfg)).forEach(show)
    else show({ area: 'state', name: 'state', ok: false, detail: 'not checked: S3 does not answer' })
    monitoring.forEach(show)
    // 5. Backup jobs and freshness
    checkBackups(cov, now).forEach(show)
  } catch (e) {
    if (!(e instanceof DrError)) throw e
    show({ area: 'node', name: `node ${pve.node}`, ok: false, detail: e.message })
  } finally {
    for (const p of nodes.pves) await p.ssh.close()
  }

  // Summary
  const failed = lines.filter((l) => !l.ok)
  const took = clock((Date.now() - started) / 1000)
  if (!failed.length) return finish(0, `${mark.ok} The lab is healthy: ${lines.length} checks passed in ${took}.`, [])
  const next = [...new Set(failed.map((l) => NEXT[l.area]))]
  return finish(1, `${mark.fail} ${failed.length} of ${lines.length} checks failed in ${took}: ${failed.map((l) => l.name).join(', ')}.`, next)
}, import.meta.url)

const NEXT: Record<Line['area'], string> = {
  node: 'Check the node: ssh to it, then run dr:check again.',
  guests: 'Bring the guest back: npm run restore:vm -- <vmid> (or npm run dr -- --only <vmid>).',
  minio: 'Rebuild MinIO: npm run rebuild:minio.',
  state: 'Restore the state: npm run restore:state -- list --env <env>, then restore --version <ID>.',
  monitoring: 'Rebuild the monitoring stack: npm run rebuild:monitoring.',
  backups: 'Check the backup jobs on the node (Datacenter → Backup), then run verify:backups.',
}
