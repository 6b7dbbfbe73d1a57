#!/usr/bin/env node
// rebuild:monitoring — bring the homelab's eyes back: the monitoring VM from its latest backup, then
// proof that Prometheus scrapes, Alertmanager receives and Grafana shows (US4).
//
//   npm run rebuild:monitoring                  diagnose; healthy: nothing to do; else restore (asks first)
//   npm run rebuild:monitoring -- --dry-run     the diagnosis and the plan, with real facts; nothing changes
//   npm run rebuild:monitoring -- --force       restore even when healthy (safety backup first), no question
//   npm run rebuild:monitoring -- --apply       no backup: terraform apply of the monitoring environment
//
// Order: args → config → preflight → diagnose (read-only checks, US4.1/US4.2) → healthy: report, exit 0
// → restore VM monitoring_vmid with the shared flow (lib/guest-restore.ts: plan, confirm, safety backup,
// stop, restore, start, prove) or, with no backup, Terraform (US4.3) → the same checks → report.
// Manual: docs/rebuild-monitoring.md.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { defineTask, onInterrupt } from '../lib/task.ts'
import { DrError } from '../lib/errors.ts'
import type { CommandSpec, Values } from '../lib/args.ts'
import { loadConfig, findNode, requireMonitoring, type Config, type Environment } from '../lib/config.ts'
import { Ssh, shQuote } from '../lib/ssh.ts'
import { Pve } from '../lib/pve.ts'
import { restoreGuest, NoBackupError, type RunState } from '../lib/guest-restore.ts'
import { checkMonitoring, monitoringSite, type CheckResult } from '../lib/monitoring.ts'
import * as tf from '../lib/terraform.ts'
import { printPlan, execute, type Plan } from '../lib/plan.ts'
import { Report } from '../lib/report.ts'
import { confirm, declined } from '../lib/prompt.ts'
import { say, mark } from '../lib/output.ts'

const options = {
  apply: { type: 'boolean', description: 'when there is no backup: run terraform apply of the monitoring environment (plan shown, confirmed)' },
  node: { type: 'string', value: 'NAME', description: 'the Proxmox node (default: the first in proxmox_nodes)' },
  wait: { type: 'string', value: 'SECONDS', description: 'how long the services may take to come up after the restore (default 120)' },
} as const

const spec: CommandSpec<typeof options> = {
  id: 'rebuild:monitoring',
  summary: 'Restore the monitoring VM from its latest backup and check Prometheus, Grafana and Alertmanager.',
  description: `
Diagnoses the monitoring stack first: VM monitoring_vmid running, its Docker services (docker compose ps
over SSH), Prometheus ready with every target up, Alertmanager ready and active in Prometheus, a
synthetic alert received then expired, Grafana healthy with its datasources reachable and its
dashboards listed. Healthy: says so and changes nothing (--force restores anyway). Otherwise restores
the VM from its latest backup exactly as restore:vm does (plan, confirmation, safety backup of the VM
it replaces, start, ping + SSH), then runs the same checks, each a line of the report. With no backup,
prints the terraform apply that recreates the VM from zero (metrics history lost); --apply runs it.
Settings: monitoring_* in terraform.tfvars (docs/rebuild-monitoring.md).`,
  positionals: [],
  options,
  examples: [
    'npm run rebuild:monitoring',
    'npm run rebuild:monitoring -- --dry-run',
    'npm run rebuild:monitoring -- --force',
    'npm run rebuild:monitoring -- --apply',
  ],
}

// ---- args: every usage error before any I/O ----

interface Request {
  apply: boolean
  node: string | undefined
  waitMs: number
  dryRun: boolean
  yes: boolean
  force: boolean
  tfDir: string | undefined
}

function readRequest(v: Values<typeof options>): Request {
  let waitMs = 120_000
  if (v.wait !== undefined) {
    if (!/^\d{1,5}$/.test(v.wait) || Number(v.wait) < 1) throw new DrError('usage', `Invalid --wait ${JSON.stringify(v.wait)}: expected a number of seconds from 1 to 99999.`)
    waitMs = Number(v.wait) * 1000
  }
  return { apply: v.apply, node: v.node, waitMs, dryRun: v['dry-run'], yes: v.yes, force: v.force, tfDir: v['tf-dir'] }
}

// ---- the runbook ----

async function main(req: Request): Promise<number> {
  const cfg = await loadConfig(req.tfDir)
  const mon = requireMonitoring(cfg)
  const site = monitoringSite(cfg)
  const node = findNode(cfg, req.node)
  const report = new Report('rebuild:monitoring')
  const ssh = new Ssh(node)
  const run: RunState = { phase: 'nothing changed', undo: [] }
  onInterrupt(() => run.phase === 'nothing changed' ? 'Nothing had been changed yet.' : `${run.phase}. ${run.undo.join(' ')}`)
  /** A check as a report line: `✓ title: what was found` or `✗ title: what is wrong`. */
  const line = (r: CheckResult) => r.ok ? report.record(r.detail ? `${r.title}: ${r.detail}` : r.title, 'ok', [r.detail].filter(Boolean)) : report.record(r.title, 'failed', [r.detail])
  try {
    // Preflight: the node answers.
    const pve = await report.check(`Node '${node.name}' reachable over SSH (${node.user}@${node.host}:${node.port})`, () => Pve.connect(ssh))

    // Diagnose (read-only; no synthetic alert in a dry run): healthy means nothing to do.
    say('')
    say(`Diagnosis of the monitoring stack (VM ${mon.vmid}, ${mon.ip}):`)
    const before = await checkMonitoring(cfg, { pve, synthetic: !req.dryRun, onResult: line })
    report.facts.diagnosis = before
    const failing = before.filter((r) => !r.ok)
    if (failing.length === 0 && !req.force) {
      return report.finish({
        exitCode: 0,
        summary: `${mark.ok} The monitoring stack is healthy (${before.length} checks passed): nothing was changed.`,
        next: ['To restore the VM from its latest backup anyway (safety backup first): npm run rebuild:monitoring -- --force'],
      })
    }
    say(failing.length ? `Not healthy: ${failing.map((r) => r.title).join(', ')}.` : 'Healthy, but --force was given: restoring anyway.')

    // Restore the VM from its latest backup (the shared flow: plan, confirm, safety backup, restore, start, prove).
    let restored
    try {
      restored = await restoreGuest(pve, cfg, {
        task: 'rebuild:monitoring', vmid: mon.vmid, yes: req.yes, force: req.force, dryRun: req.dryRun,
        access: { address: mon.ip, source: 'monitoring_ip', ...site.ssh }, tfDir: req.tfDir,
      }, report, run)
    } catch (e) {
      if (!(e instanceof NoBackupError)) throw e
      return await fromTerraform(pve, cfg, req, report, e, run, line) // US4.3
    }
    if (restored.status === 'dry-run') {
      report.record(`Then the same checks of the stack (up to ${req.waitMs / 1000} s for the services)`, 'dry-run')
      return report.finish({ exitCode: 0, summary: 'Dry run: nothing was changed. Run the same command without --dry-run to restore.' })
    }

    // Verify (US4.1, US4.2): every service, target, alert path and dashboard, waited for within --wait.
    say('')
    say('The monitoring stack after the restore:')
    const after = await checkMonitoring(cfg, { pve, waitMs: req.waitMs, onResult: line })
    report.facts.checks = after
    const bad = [...restored.failures, ...after.filter((r) => !r.ok).map((r) => `${r.title}: ${r.detail}`)]
    const from = restored.facts.backup.file
    if (bad.length) {
      return report.finish({
        exitCode: 5,
        summary: `${mark.fail} ${restored.what} was restored from ${from}, but the stack is not fully back: ${bad.join('; ')}.`,
        next: [...restored.undo, `Look on the VM: ssh -p ${site.ssh.port} ${site.ssh.user}@${mon.ip} 'cd ${shQuote(site.composeDir)} && docker compose ps --all && docker compose logs --tail 50'`],
      })
    }
    return report.finish({
      exitCode: 0,
      summary: `${mark.ok} ${restored.what} restored from ${from}: ${after.length} checks passed (services, Prometheus targets, Alertmanager, Grafana).`,
      next: restored.undo[0] ? [restored.undo[0]] : [],
    })
  } catch (e) {
    if (!(e instanceof DrError)) throw e
    return report.fail(e, run.undo)
  } finally {
    report.facts.sshCommands = ssh.commands
    await ssh.close()
  }
}

// ---- no backup (US4.3) ----

/** The environment that declares the monitoring VM: the one named 'monitoring', else the one whose tfvars set monitoring_vmid. */
function monitoringEnvironment(cfg: Config): Environment | undefined {
  const byName = cfg.environments.find((e) => e.name === 'monitoring')
  if (byName) return byName
  const file = cfg.vars.get('monitoring_vmid')?.file
  return cfg.environments.find((e) => file !== undefined && join(cfg.tfDir, file).startsWith(e.dir + '/'))
}

async function fromTerraform(pve: Pve, cfg: Config, req: Request, report: Report, e: NoBackupError, run: RunState, line: (r: CheckResult) => void): Promise<number> {
  const mon = requireMonitoring(cfg)
  const env = monitoringEnvironment(cfg)
  if (!env) throw new DrError('prerequisites', `${e.message.replace(/: nothing to restore\. Nothing was changed\.$/, '')}, and no Terraform environment declares the monitoring VM (no environments/monitoring in ${cfg.tfDir}). Nothing was changed.`, 'Recreate the VM by hand, or add its Terraform environment; see docs/rebuild-monitoring.md.')
  const command = `terraform -chdir=${shQuote(env.dir)} apply`
  report.facts.terraform = { environment: env.name, command }
  say('')
  say(`There is no backup of the monitoring VM (VM ${mon.vmid}): it cannot be restored, only recreated from zero by Terraform:`)
  say(`  ${command}`)
  say(`  ${mark.warn} The metrics history is lost: Prometheus starts with an empty database; Alertmanager silences and anything changed by hand in Grafana are gone.`)
  if (!req.apply) {
    return report.finish({
      exitCode: 4,
      summary: `${mark.fail} No backup of VM ${mon.vmid} (monitoring) on storage '${e.storage}': nothing was changed. Recreate it from zero (metrics history lost) with: ${command}`,
      next: ['Or let homelab-dr run it (plan shown and confirmed first), then check the stack: npm run rebuild:monitoring -- --apply'],
    })
  }

  // --apply: plan → confirm → apply exactly that plan → the same checks.
  await report.check('terraform installed', async (d) => { d.push(await tf.verifyTerraform()) })
  const creds = cfg.minio ? { accessKey: cfg.minio.accessKey, secretKey: cfg.minio.secretKey } : undefined
  const work = mkdtempSync(join(tmpdir(), 'hdr-monitoring-plan-'))
  const planFile = join(work, 'monitoring.tfplan')
  try {
    let summary = ''
    const plan: Plan = {
      title: `Recreate the monitoring VM with Terraform in ${env.dir}`,
      facts: [['Environment', `${env.name} (${env.dir})`], ['Backup', `none of VM ${mon.vmid} on '${e.storage}'`], ['Lost', 'the metrics history, silences, hand-made Grafana changes']],
      warnings: [],
      actions: [
        { title: 'terraform init', command: `terraform -chdir=${shQuote(env.dir)} init -input=false`, mutates: true, run: async () => tf.init(env.dir, [], { creds }) },
        {
          title: 'terraform plan', command: `terraform -chdir=${shQuote(env.dir)} plan -out=PLANFILE`, mutates: true,
          run: async (d) => {
            const r = await tf.terraform(env.dir, ['plan', '-detailed-exitcode', '-input=false', `-out=${planFile}`], { creds })
            if (r.exitCode !== 0 && r.exitCode !== 2) throw new DrError('failed', `terraform plan failed (exit ${r.exitCode}): ${tf.lastLines(r)}. Nothing was changed.`)
            const p = tf.parsePlan(r.stdout, r.exitCode)
            summary = p.summary
            d.push(p.summary, ...p.changes)
          },
        },
      ],
    }
    printPlan(plan)
    await execute(plan, report, req.dryRun)
    if (req.dryRun) {
      report.record(`terraform apply PLANFILE, then the checks of the stack`, 'dry-run')
      return report.finish({ exitCode: 0, summary: 'Dry run: nothing was changed (no terraform run). Run the same command without --dry-run to recreate the VM.' })
    }
    if (!(await confirm(`Apply this plan (${summary}) to recreate the monitoring VM from zero? The metrics history is lost.`, req))) declined('the terraform apply')
    run.phase = `terraform apply was running in ${env.dir}`
    await report.step('terraform apply', async (d) => {
      const r = await tf.terraform(env.dir, ['apply', '-input=false', planFile], { creds, timeoutMs: 60 * 60_000 })
      if (r.exitCode !== 0) throw new DrError('failed', `terraform apply failed (exit ${r.exitCode}): ${tf.lastLines(r)}.`, `Read the error, fix it, then: ${command}`)
      d.push(/^Apply complete!.*$/m.exec(r.stdout)?.[0] ?? 'applied')
    })
    run.phase = `terraform apply recreated the monitoring VM in ${env.dir}`
  } finally {
    rmSync(work, { recursive: true, force: true })
  }

  say('')
  say('The monitoring stack after terraform apply:')
  const after = await checkMonitoring(cfg, { pve, waitMs: req.waitMs, onResult: line })
  report.facts.checks = after
  const bad = after.filter((r) => !r.ok)
  if (bad.length) {
    return report.finish({ exitCode: 5, summary: `${mark.fail} terraform apply recreated the monitoring VM, but the stack is not fully back: ${bad.map((r) => `${r.title}: ${r.detail}`).join('; ')}.` })
  }
  return report.finish({ exitCode: 0, summary: `${mark.ok} The monitoring VM was recreated from zero by terraform apply: ${after.length} checks passed. Its metrics history starts now.` })
}

// Last, so that every declaration above is initialised when the task runs.
export const task = defineTask(spec, async ({ values }) => main(readRequest(values)), import.meta.url)
