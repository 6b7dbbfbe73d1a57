// The lab's health as checks, each one line: the node, the guests the backup jobs cover, MinIO and
// every environment's state, the monitoring stack, the backup jobs and the freshness of each guest's
// newest backup. Read-only. dr:check prints them all; dr asks one area before a step to skip a step
// that is already healthy, and after it to show its verification.
import { exec } from './exec.ts'
import { DrError } from './errors.ts'
import { checkMonitoring as monitoringChecks } from './monitoring.ts'
import { diagnoseMinio, diagnosisLines, minioEndpoint } from './minio.ts'
import { Pve, kindWord, type BackupJob, type Resource } from './pve.ts'
import { Ssh } from './ssh.ts'
import { guestAccess, label, readOccupant, waitForPing, waitForSsh } from './guest.ts'
import { openS3, getText, s3Error, classify } from './s3.ts'
import * as tf from './terraform.ts'
import { expectedGuests, guestItem, stateChecks, worst } from './verify.ts'
import { problemOf, type Config, type Environment } from './config.ts'
import type { Backup } from './backups.ts'

export type Area = 'node' | 'guests' | 'minio' | 'state' | 'monitoring' | 'backups'

export interface Line {
  area: Area
  /** What is checked, e.g. `VM 101 (web01)`, `bucket tfstate`. */
  name: string
  ok: boolean
  detail: string
}

export const healthy = (lines: Line[]) => lines.length > 0 && lines.every((l) => l.ok)

/** Connects to every node; a node that does not answer is a failed line (and no Pve). */
export async function checkNodes(cfg: Config): Promise<{ pves: Pve[]; lines: Line[] }> {
  const pves: Pve[] = []
  const lines: Line[] = []
  for (const target of cfg.nodes) {
    try {
      const pve = await Pve.connect(new Ssh(target))
      pves.push(pve)
      lines.push({ area: 'node', name: `node ${pve.node}`, ok: true, detail: `reachable over SSH (${target.user}@${target.host}:${target.port})` })
    } catch (e) {
      lines.push({ area: 'node', name: `node ${target.name}`, ok: false, detail: e instanceof Error ? e.message : String(e) })
    }
  }
  return { pves, lines }
}

// ---- what the backup jobs cover ----

export interface Coverage {
  jobs: BackupJob[]
  resources: Resource[]
  backups: Backup[]
  /** VMIDs covered by an enabled job: listed, or every guest (an `all` job) — with a backup or existing. */
  covered: number[]
}

export async function coverage(pve: Pve): Promise<Coverage> {
  const [jobs, resources, storages] = await Promise.all([pve.backupJobs(), pve.resources(), pve.storages('backup')])
  const active = storages.filter((s) => s.enabled && s.active && s.content.includes('backup'))
  const backups = (await Promise.all(active.map((s) => pve.backups(s.storage)))).flat()
  const covered = new Set<number>()
  for (const j of jobs.filter((x) => x.enabled)) {
    if (j.all) {
      for (const r of resources) if (!r.template && r.node === pve.node) covered.add(r.vmid)
      for (const b of backups) if (!j.storage || b.storage === j.storage) covered.add(b.vmid)
    } else for (const v of j.vmids) covered.add(v)
  }
  return { jobs, resources, backups, covered: [...covered].sort((a, b) => a - b) }
}

// ---- guests ----

/** A guest must run when its config says `onboot: 1`, or when it is MinIO or the monitoring VM. */
export function mustRun(cfg: Config, vmid: number, conf: Record<string, string>): boolean {
  return conf.onboot === '1' || vmid === cfg.minio?.ctid || vmid === cfg.monitoring?.vmid
}

/**
 * One guest: it exists, runs (unless it is meant to be stopped), answers ping, and takes an SSH login.
 * MinIO and the monitoring VM are proven by their services instead of SSH (their own checks).
 */
export async function checkGuest(pve: Pve, cfg: Config, vmid: number, waitMs = 3_000): Promise<Line> {
  const occ = await readOccupant(pve, vmid)
  if (!occ) return { area: 'guests', name: `guest ${vmid}`, ok: false, detail: 'missing on the node (restore it: npm run restore:vm -- ' + vmid + ')' }
  const name = label(occ.type, vmid, occ.config)
  if (occ.status !== 'running') {
    return mustRun(cfg, vmid, occ.config)
      ? { area: 'guests', name, ok: false, detail: `${occ.status}, but it should run (onboot: 1)` }
      : { area: 'guests', name, ok: true, detail: `${occ.status} (meant to be: no onboot)` }
  }
  const access = guestAccess(cfg, vmid, occ.config)
  if (!access.address) return { area: 'guests', name, ok: false, detail: 'running, but no address known (add it to guest_addresses in terraform.tfvars)' }
  try {
    await waitForPing(access.address, waitMs)
    if (vmid === cfg.minio?.ctid || vmid === cfg.monitoring?.vmid) return { area: 'guests', name, ok: true, detail: `running, ${access.address} answers ping (its services are checked below)` }
    const host = await waitForSsh({ ...access, address: access.address }, String(vmid), waitMs)
    return { area: 'guests', name, ok: true, detail: `running, ${access.address} answers ping and SSH (hostname ${host})` }
  } catch (e) {
    return { area: 'guests', name, ok: false, detail: `running, but ${e instanceof Error ? e.message.replace(/\.$/, '') : String(e)}` }
  }
}

// ---- MinIO and the state ----

/**
 * MinIO, by rebuild:minio's own read-only diagnosis (lib/minio.ts): S3 answers with the configured
 * credentials, every bucket the homelab uses exists with versioning Enabled; with a node, its CT runs;
 * with states, each environment's state object exists (or has no local copy to push back).
 */
export async function checkMinio(cfg: Config, opts: { pve?: Pve; states?: boolean } = {}): Promise<Line[]> {
  const minio = cfg.minio
  if (!minio) return [{ area: 'minio', name: 'MinIO', ok: false, detail: problemOf(cfg, 'minio')?.message ?? 'no MinIO settings (minio_ip) in terraform.tfvars' }]
  const s3 = await openS3({ endpoint: minioEndpoint(minio), accessKey: minio.accessKey, secretKey: minio.secretKey })
  try {
    const d = await diagnoseMinio(cfg, minio, { s3, ...(opts.pve ? { pve: opts.pve } : {}) })
    return diagnosisLines(d)
      .filter(([, text]) => opts.states || !text.startsWith('state of '))
      .map(([status, text]) => {
        const cut = text.indexOf(': ')
        const [name, detail] = cut < 0 ? [text, ''] : [text.slice(0, cut), text.slice(cut + 2)]
        return { area: 'minio' as const, name, ok: status !== 'failed', detail }
      })
  } finally {
    s3.close()
  }
}

/** Every environment with an s3 backend: the current state is valid JSON with serial and lineage,
 *  and `terraform init` reconnects to the backend. */
export async function checkStates(cfg: Config, only?: string[]): Promise<Line[]> {
  const envs = cfg.environments.filter((e) => e.bucket && e.key && (!only || only.includes(e.name)))
  if (!cfg.minio) return [{ area: 'state', name: 'state', ok: false, detail: problemOf(cfg, 'minio')?.message ?? 'no MinIO settings (minio_ip) in terraform.tfvars' }]
  const minio = cfg.minio
  return Promise.all(envs.map(async (env) => {
    const name = `state ${env.name}`
    const s3 = await openS3({ endpoint: env.endpoint ?? minio.endpoint, accessKey: minio.accessKey, secretKey: minio.secretKey })
    let serial: number | undefined
    try {
      const { text } = await getText(s3, env.bucket!, env.key!)
      const r = stateChecks(text)
      const bad = r.checks.find((c) => c.status !== 'ok')
      if (bad) return { area: 'state' as const, name, ok: false, detail: `${env.bucket}/${env.key}: ${bad.detail ?? bad.name}` }
      serial = r.serial
    } catch (e) {
      const kind = classify(e)
      return { area: 'state' as const, name, ok: false, detail: kind === 'not-found' ? `no state at ${env.bucket}/${env.key} (lost, or never applied)` : s3Error(e, s3, `reading ${env.bucket}/${env.key}`).message }
    } finally {
      s3.close()
    }
    const init = await initWorks(env, cfg)
    return init ? { area: 'state' as const, name, ok: false, detail: `serial ${serial}, but ${init}` } : { area: 'state' as const, name, ok: true, detail: `serial ${serial}, lineage kept, terraform init works` }
  }))
}

/** undefined when `terraform init` works in the environment, else why. */
async function initWorks(env: Environment, cfg: Config): Promise<string | undefined> {
  try {
    await tf.init(env.dir, ['-reconfigure'], { creds: { accessKey: cfg.minio!.accessKey, secretKey: cfg.minio!.secretKey } })
    return undefined
  } catch (e) {
    return e instanceof DrError ? e.message : String(e)
  }
}

// ---- monitoring ----

/**
 * The monitoring stack, proven by rebuild:monitoring's own read-only checks (lib/monitoring.ts):
 * services, Prometheus ready with every target up, Alertmanager active, Grafana healthy with its
 * datasources and dashboards. One look, no synthetic alert (dr:check writes nothing).
 */
export async function checkMonitoring(cfg: Config): Promise<Line[]> {
  if (!cfg.monitoring) return [{ area: 'monitoring', name: 'monitoring', ok: false, detail: problemOf(cfg, 'monitoring')?.message ?? 'no monitoring settings (monitoring_vmid) in terraform.tfvars' }]
  const results = await monitoringChecks(cfg, { synthetic: false })
  return results.map((r) => ({ area: 'monitoring' as const, name: r.title, ok: r.ok, detail: r.detail }))
}

// ---- backups ----

/** Every backup job enabled, and every guest's newest backup younger than its job's schedule allows. */
export function checkBackups(cov: Coverage, nowSeconds: number): Line[] {
  const lines: Line[] = []
  if (!cov.jobs.length) lines.push({ area: 'backups', name: 'backup jobs', ok: false, detail: 'no backup job on the node (pvesh get /cluster/backup)' })
  for (const j of cov.jobs) {
    lines.push(j.enabled
      ? { area: 'backups', name: `backup job ${j.id}`, ok: true, detail: `enabled, ${j.schedule || 'no schedule'}${j.storage ? ` to ${j.storage}` : ''}` }
      : { area: 'backups', name: `backup job ${j.id}`, ok: false, detail: 'disabled' })
  }
  const files = cov.backups.map((b) => ({ vmid: b.vmid, volid: b.volid, ctime: b.ctime, size: b.size, status: 'ok' as const }))
  for (const g of expectedGuests(cov.resources, cov.jobs, undefined)) {
    const item = guestItem(g, files, nowSeconds)
    const who = `${g.type ? kindWord(g.type) : 'guest'} ${g.vmid}${g.name ? ` (${g.name})` : ''}`
    lines.push({ area: 'backups', name: `backup of ${who}`, ok: item.status === 'ok', detail: item.detail })
  }
  return lines
}

export const allOk = (lines: Line[]) => worst(lines.map((l) => (l.ok ? 'ok' : 'failed'))) === 'ok'
