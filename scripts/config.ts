#!/usr/bin/env node
// config — the first-run doctor (EF-005): what homelab-dr found in the operator's Terraform repo and
// where (file:line for each value; each environment with its backend settings and where each came
// from), what is missing for which task, and the exact .env line to add for each gap.
//
//   npm run config                       everything found, then the gaps
//   npm run config:check                 only the gaps (exit 0: every task has what it needs, 4: not)
//   npm run config -- --tf-dir ~/homelab-infra --json
//
// Reads files only: no SSH, no S3, nothing written. Manual: docs/configuration.md.
import { relative } from 'node:path'
import type { CommandSpec } from '../lib/args.ts'
import { findTfDir, loadConfig, problemOf, stateStore, type Config, type Environment } from '../lib/config.ts'
import { DrError } from '../lib/errors.ts'
import { isJsonMode, mark, printJson, say } from '../lib/output.ts'
import { defineTask } from '../lib/task.ts'

const spec = {
  id: 'config',
  summary: 'Show what homelab-dr reads from your Terraform repo and where, what each task is missing, and the .env line to add.',
  description: `
Reads your Terraform repo as every task does (variable files, variables.tf defaults, provider and
backend blocks, backend.hcl / *.tfbackend, .terraform, .env) and prints:
  - each value homelab-dr uses, with the file:line (or .env key) it came from;
  - each environment (root module) with its backend: bucket, key, endpoint, workspace prefix, workspaces,
    credentials, and where each setting came from;
  - for each task, what it still needs, and the exact line to add to .env.
Exit 0 when every task has what it needs, 4 otherwise. Touches nothing (no SSH, no S3).`,
  positionals: [],
  options: {
    check: { type: 'boolean', description: 'print only the gaps (npm run config:check)' },
  },
  examples: ['npm run config', 'npm run config -- --tf-dir ~/homelab-infra', 'npm run config:check'],
} satisfies CommandSpec

interface Gap {
  task: string
  what: string
  /** The line to add to .env, when one fills the gap. */
  line?: string
}

export const task = defineTask(spec, async ({ values }) => {
  // ---- config: the same loader the tasks use, recording what is missing instead of stopping
  const tfDir = findTfDir(values['tf-dir'])
  const cfg = await loadConfig(tfDir, { lenient: true })

  // ---- checks: what each task needs
  const gaps = findGaps(cfg)
  const applies = { minioContainer: cfg.minio?.ctid !== undefined }

  // ---- report
  if (isJsonMode()) {
    printJson(asJson(cfg, gaps))
  } else {
    if (!values.check) describe(cfg, applies.minioContainer)
    describeGaps(cfg, gaps)
  }
  return gaps.length ? 4 : 0
}, import.meta.url)

// ---- what each task needs ----

function findGaps(cfg: Config): Gap[] {
  const gaps: Gap[] = []
  const problem = (setting: Config['problems'][number]['setting']) => problemOf(cfg, setting)
  const add = (tasks: string[], e: DrError) => {
    const line = /Add to \.env: (.+?)(?:  \(|$)/.exec(e.hint ?? '')?.[1]
    for (const t of tasks) gaps.push({ task: t, what: e.message, ...(line ? { line } : {}) })
  }
  const nodes = problem('nodes')
  if (nodes) add(['restore:vm', 'verify:backups', 'rebuild:minio', 'rebuild:monitoring', 'dr:check'], nodes)
  const storage = problem('storage')
  if (storage) add(['restore:vm', 'verify:backups'], storage)
  const minio = problem('minio')
  if (minio) add(['rebuild:minio'], minio)
  else if (!cfg.minio) add(['rebuild:minio'], new DrError('prerequisites', 'No MinIO settings: minio_ip is not set.', 'Add to .env: HDR_MINIO_IP=<address of MinIO>'))
  const monitoring = problem('monitoring')
  if (monitoring) add(['rebuild:monitoring'], monitoring)
  else if (!cfg.monitoring) add(['rebuild:monitoring'], new DrError('prerequisites', 'No monitoring VM: monitoring_vmid is not set.', 'Add to .env: HDR_MONITORING_VMID=<VM id> and HDR_MONITORING_IP=<address>'))
  const credentials = problem('credentials')
  if (credentials) add(['restore:state'], credentials)
  const s3Envs = cfg.environments.filter((e) => e.backend?.type === 's3')
  if (s3Envs.length === 0) add(['restore:state', 'verify:backups --states'], new DrError('prerequisites', `No environment with an s3 backend was found in ${cfg.tfDir}.`, 'Point --tf-dir (or HOMELAB_TF_DIR in .env) at your Terraform repo: HOMELAB_TF_DIR=<path>'))
  for (const env of s3Envs) {
    try {
      stateStore(cfg, env)
    } catch (e) {
      if (!(e instanceof DrError)) throw e
      add([`restore:state --env ${env.name}`, 'verify:backups --states'], e)
    }
  }
  // dr runs them all: it needs what any of them needs.
  const seen = new Set<string>()
  for (const g of [...gaps]) if (!seen.has(g.what)) seen.add(g.what), gaps.push({ ...g, task: 'dr' })
  return gaps
}

// ---- what was found ----

function describe(cfg: Config, minioContainer: boolean): void {
  const rel = (p: string) => relative(cfg.tfDir, p) || '.'
  say(`Terraform repo: ${cfg.tfDir}`)
  say(`  variable values: ${cfg.files.join(', ') || 'no tfvars file (variables.tf defaults, TF_VAR_ and .env only)'}`)
  say(`  .tf files read: ${cfg.tfFiles.length}`)
  for (const d of cfg.dotenv) say(`  .env ${d.file}: loaded ${d.loaded.join(', ') || 'nothing'}${d.refused.length ? `; refused ${d.refused.join(', ')} (not homelab-dr's keys)` : ''}`)
  say('')
  say(`Proxmox node${cfg.nodes.length === 1 ? '' : 's'}${cfg.nodesFrom ? ` (from ${cfg.nodesFrom})` : ''}:`)
  if (cfg.nodes.length === 0) say(`  ${mark.fail} none found`)
  for (const n of cfg.nodes) say(`  ${n.name}  ${n.user}@${n.host}:${n.port}`)
  say('')
  say('Values:')
  const from = (k: string) => cfg.used.get(k) ?? 'default'
  const row = (k: string, v: unknown) => say(`  ${k.padEnd(22)} ${String(v).padEnd(28)} ${from(k)}`)
  row('backup_storage', cfg.backupStorage)
  if (cfg.guestStorage) row('guest_storage', cfg.guestStorage)
  if (cfg.minio) {
    row('minio_ip', cfg.minio.ip)
    row('minio_port', cfg.minio.port)
    row('minio_ctid', cfg.minio.ctid ?? (minioContainer ? '' : '- (not a Proxmox CT: only rebuild:minio needs it)'))
    row('minio_root_user', cfg.minio.accessKey)
    row('minio_buckets', cfg.minio.buckets.join(', '))
  }
  if (cfg.monitoring) {
    row('monitoring_vmid', cfg.monitoring.vmid)
    row('monitoring_ip', cfg.monitoring.ip)
  }
  say('')
  say(`Environments (${cfg.environments.length}):`)
  for (const env of cfg.environments) describeEnv(cfg, env, rel)
  say('')
}

function describeEnv(cfg: Config, env: Environment, rel: (p: string) => string): void {
  say(`  ${env.name}  (${rel(env.dir)})`)
  if (!env.backend) return say('    backend: local (no backend block): its state is not in S3')
  if (env.backend.type !== 's3') return say(`    backend: ${env.backend.type}: not an S3 backend, homelab-dr does not manage its state`)
  if (env.problem) say(`    ${mark.fail} ${env.problem.message}`)
  const src = (k: string, fallback = 'not set') => env.sources[k] ?? fallback
  say(`    bucket                ${(env.bucket ?? '-').padEnd(30)} ${src('bucket')}`)
  say(`    key                   ${(env.key ?? '-').padEnd(30)} ${src('key')}`)
  say(`    endpoint              ${(env.endpoint ?? (env.aws ? 'AWS S3 (no endpoint)' : '-')).padEnd(30)} ${src('endpoint', env.aws ? 'no endpoint set: AWS, not MinIO' : 'not set')}`)
  say(`    workspace_key_prefix  ${env.workspaceKeyPrefix.padEnd(30)} ${src('workspace_key_prefix', "Terraform's default")}`)
  say(`    workspaces            ${['default', ...env.workspaces].map((w) => (w === env.workspace ? `${w} (selected)` : w)).join(', ')}`)
  if (env.backendConfigFiles.length) say(`    terraform init uses   ${env.backendConfigFiles.map((f) => `-backend-config=${rel(f)}`).join(' ')}`)
  try {
    const store = stateStore(cfg, env)
    say(`    credentials           ${store.credentialsFrom}`)
  } catch {
    // listed with the gaps below
  }
}

function describeGaps(cfg: Config, gaps: Gap[]): void {
  const tasks = ['restore:vm', 'restore:state', 'verify:backups', 'rebuild:minio', 'rebuild:monitoring', 'dr', 'dr:check']
  say('What each task needs:')
  for (const t of tasks) {
    const mine = gaps.filter((g) => g.task === t || g.task.startsWith(`${t} `))
    if (t === 'rebuild:minio' && cfg.minio && cfg.minio.ctid === undefined && !mine.length) {
      say(`  ${mark.skip} ${t.padEnd(19)} MinIO is not a Proxmox container here (no minio_ctid): the container rebuild does not apply`)
      continue
    }
    if (!mine.length) say(`  ${mark.ok} ${t}`)
    for (const g of mine) say(`  ${mark.fail} ${g.task.padEnd(19)} ${g.what}`)
  }
  const lines = [...new Set(gaps.map((g) => g.line).filter((l): l is string => !!l))]
  if (lines.length) {
    say('')
    say(`Add to .env (${cfg.tfDir}/.env), with your values:`)
    for (const l of lines) for (const part of l.split(' and ')) say(`  ${part}`)
  }
  say('')
  say(gaps.length ? `${mark.fail} ${new Set(gaps.map((g) => g.what)).size} gap(s): see above (docs/configuration.md explains each setting).` : `${mark.ok} Every task has what it needs.`)
}

function asJson(cfg: Config, gaps: Gap[]): unknown {
  return {
    tfDir: cfg.tfDir,
    files: cfg.files,
    dotenv: cfg.dotenv,
    nodes: cfg.nodes,
    nodesFrom: cfg.nodesFrom,
    values: Object.fromEntries(cfg.used),
    environments: cfg.environments.map((e) => ({
      name: e.name, dir: e.dir, backend: e.backend?.type ?? 'local', bucket: e.bucket, key: e.key, endpoint: e.endpoint, aws: e.aws,
      workspaceKeyPrefix: e.workspaceKeyPrefix, workspace: e.workspace, workspaces: e.workspaces, sources: e.sources, problem: e.problem?.message,
    })),
    gaps,
  }
}
