#!/usr/bin/env node
// rebuild:minio — bring back the MinIO that holds the Terraform states (US3, CS-003).
//
//   npm run rebuild:minio                       diagnose; healthy → nothing changes; else the plan, asked first
//   npm run rebuild:minio -- --dry-run          the diagnosis and the whole plan, with real facts
//   npm run rebuild:minio -- --from-scratch     a new CT from a template, MinIO installed in it
//   npm run rebuild:minio -- --push-state       also upload the newest local state of each environment missing one
//
// Order: args → config → preflight + diagnosis (EF-001) → plan (EF-002; --dry-run stops, EF-007) →
// confirm → act: the container (restore from backup with the shared guest flow, or create + install),
// wait for S3, buckets + versioning, states (US3.2) → verify: diagnosis again, terraform init + state
// list in every environment (US3.3) → report (EF-003). Manual: docs/rebuild-minio.md.
import { defineTask, onInterrupt } from '../lib/task.ts'
import { DrError } from '../lib/errors.ts'
import type { CommandSpec, Values } from '../lib/args.ts'
import { loadConfig, findNode, requireMinio, type Config, type MinioConfig } from '../lib/config.ts'
import { Ssh, commandLine } from '../lib/ssh.ts'
import { Pve, lastLine, type GuestConfig } from '../lib/pve.ts'
import { sortBackups, backupLocalTime, type Backup } from '../lib/backups.ts'
import { openS3, createBucket, bucketVersioning, enableVersioning, listBuckets, type S3 } from '../lib/s3.ts'
import {
  diagnoseMinio, diagnosisLines, environmentsOnMinio, wantedBuckets, containerParams, pctCreateArgv, localStateEnvironment,
  INSTALL_SCRIPT, minioEndpoint, minioEnvFile, minioBinaryUrl, waitForS3, newestLocalState, pushState, reconnect,
  type MinioDiagnosis, type CtParams,
} from '../lib/minio.ts'
import { verifyTerraform, terraform, lastLines } from '../lib/terraform.ts'
import { preflightRestore, planRestore, type GuestRestoreRequest, type RestoreFacts, type RunState as GuestRun } from '../lib/guest-restore.ts'
import { printPlan, execute, type Plan, type Action } from '../lib/plan.ts'
import { Report } from '../lib/report.ts'
import { confirm, declined } from '../lib/prompt.ts'
import { progress } from '../lib/progress.ts'
import { say, mark } from '../lib/output.ts'

const options = {
  'from-backup': { type: 'boolean', description: 'restore the MinIO CT from its latest vzdump backup (the default when one exists)' },
  'from-scratch': { type: 'boolean', description: 'create a new CT from a template and install MinIO in it' },
  'push-state': { type: 'boolean', description: 'upload the newest local copy of each state missing on S3 (never overwrites)' },
  'state-from': { type: 'string', value: 'DIR', description: 'local states from DIR/<env>/*.tfstate or DIR/<env>.tfstate (default: the restore:state snapshot mirror)' },
  wait: { type: 'string', value: 'SECONDS', description: 'how long to wait for S3 to answer after the container starts (default 120)' },
  node: { type: 'string', value: 'NAME', description: 'the Proxmox node (default: the first in proxmox_nodes)' },
} as const

const spec: CommandSpec<typeof options> = {
  id: 'rebuild:minio',
  summary: 'Rebuild the MinIO container (from backup or from zero), its buckets and versioning, push the states back, reconnect Terraform.',
  description: `
Diagnoses first (the container, S3 answering, the buckets and their versioning, each environment's
state object) and, when all is well, says so and changes nothing. Otherwise it shows a plan and asks:
the container comes back from its latest vzdump backup (restore:vm's flow: safety backup, restore,
start), or with --from-scratch (or no backup) a new CT with the same CTID, hostname, address, cores,
memory and disk is created from a template on the node and MinIO is installed in it. Then it waits
for S3 to answer, creates every bucket the homelab uses with versioning Enabled (never deletes one),
with --push-state uploads the newest local copy of each missing state (never overwriting), and
proves that 'terraform init' and a state read work in every environment whose backend is MinIO.
Without minio_ctid (MinIO on a NAS or a plain host) the container part is skipped.`,
  positionals: [],
  options,
  examples: [
    'npm run rebuild:minio -- --dry-run',
    'npm run rebuild:minio -- --push-state',
    'npm run rebuild:minio -- --from-scratch --push-state --yes',
    'npm run rebuild:minio -- --push-state --state-from ~/tfstate-copies',
  ],
}

// ---- args: every usage error before any I/O ----

interface Request {
  source: 'auto' | 'backup' | 'scratch'
  pushState: boolean
  stateFrom: string | undefined
  waitMs: number
  node: string | undefined
  dryRun: boolean
  yes: boolean
  force: boolean
  tfDir: string | undefined
}

function readRequest(v: Values<typeof options>): Request {
  if (v['from-backup'] && v['from-scratch']) throw new DrError('usage', 'Use either --from-backup or --from-scratch, not both.')
  if (v['state-from'] !== undefined && !v['push-state']) throw new DrError('usage', '--state-from DIR needs --push-state.')
  const wait = v.wait ?? process.env.HDR_MINIO_WAIT ?? '120'
  if (!/^\d+$/.test(wait) || Number(wait) < 1 || Number(wait) > 3600) throw new DrError('usage', `Invalid --wait ${JSON.stringify(wait)}: expected seconds from 1 to 3600.`)
  return {
    source: v['from-backup'] ? 'backup' : v['from-scratch'] ? 'scratch' : 'auto',
    pushState: v['push-state'], stateFrom: v['state-from'], waitMs: Number(wait) * 1000, node: v.node,
    dryRun: v['dry-run'], yes: v.yes, force: v.force, tfDir: v['tf-dir'],
  }
}

// ---- the runbook ----

async function main(req: Request): Promise<number> {
  const cfg = await loadConfig(req.tfDir)
  const minio = { ...requireMinio(cfg) }
  minio.endpoint = minioEndpoint(minio) // config takes the first backend's endpoint, which may be another S3
  const ctid = minio.ctid as number | undefined // optional: MinIO may not be a Proxmox container
  const report = new Report('rebuild:minio')
  const s3 = await openS3({ endpoint: minioEndpoint(minio), accessKey: minio.accessKey, secretKey: minio.secretKey, timeoutMs: 2000 })
  const ssh = ctid !== undefined ? new Ssh(findNode(cfg, req.node)) : undefined
  const run: RunState = { changed: [], guest: { phase: 'nothing changed', undo: [] } }
  onInterrupt(() => (run.changed.length ? `Done so far: ${run.changed.join('; ')}. ${run.guest.phase === 'nothing changed' ? '' : `${run.guest.phase}. ${run.guest.undo.join(' ')}`}` : 'Nothing had been changed yet.'))
  try {
    // Preflight (EF-001): the node (when MinIO is a CT), terraform, then the diagnosis.
    const pve = ssh ? await report.check(`Node '${ssh.target.name}' reachable over SSH (${ssh.target.user}@${ssh.target.host}:${ssh.target.port})`, () => Pve.connect(ssh)) : undefined
    await report.check('terraform on PATH', async (d) => void d.push(await verifyTerraform()))
    say('')
    say(`Diagnosis of MinIO (${minio.endpoint}${ctid !== undefined ? `, CT ${ctid}` : ', not a Proxmox container here'}):`)
    const diag = await diagnoseMinio(cfg, minio, { pve, s3, stateFrom: req.stateFrom })
    for (const [status, text] of diagnosisLines(diag)) report.record(text, status)
    report.facts.diagnosis = diag
    if (diag.s3 === 'credentials') {
      throw new DrError('prerequisites', `S3 at ${minio.endpoint} answers but refuses the credentials: nothing was changed (a rebuild would not fix wrong keys).`, 'Check minio_root_user / minio_root_password in terraform.tfvars (or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) against the MinIO server.')
    }
    if (diag.healthy && req.source === 'auto') {
      return report.finish({ exitCode: 0, summary: `${mark.ok} MinIO is healthy: the container runs, S3 answers, every bucket is versioned${diag.states.length ? ', the states are there' : ''}. Nothing was changed.` })
    }

    // Plan (EF-002); --dry-run stops after showing it (EF-007).
    const facts = await preflight(cfg, minio, pve, diag, req, report)
    const plan = planRebuild(cfg, minio, pve, s3, diag, facts, req, run, report)
    printPlan(plan)
    if (req.dryRun) {
      await execute(plan, report, true)
      return report.finish({ exitCode: 0, summary: 'Dry run: nothing was changed. Run the same command without --dry-run to rebuild.' })
    }

    // Confirm: one question for the whole plan.
    if (!(await confirm(`${plan.title}?`, { yes: req.yes, force: req.force }))) declined('the rebuild of MinIO')

    // Act: the plan's actions in order.
    await execute(plan, report, false)

    // Verify (US3.1, US3.3) and report (EF-003).
    return await verifyRebuilt(cfg, minio, pve, s3, req, run, report)
  } catch (e) {
    if (!(e instanceof DrError)) throw e
    return report.fail(e, [...(run.changed.length ? [`Changed before the failure: ${run.changed.join('; ')}.`] : []), ...run.guest.undo])
  } finally {
    if (ssh) {
      report.facts.sshCommands = ssh.commands
      await ssh.close()
    }
    s3.close()
  }
}

interface RunState {
  /** What this run changed, in order: for the report and Ctrl-C. */
  changed: string[]
  /** The shared guest flow's own record: its safety backup and how to put it back. */
  guest: GuestRun
}

// ---- preflight ----

type ContainerWay =
  | { kind: 'none'; why: string }
  | { kind: 'start' }
  | { kind: 'restore'; backup: Backup; request: GuestRestoreRequest; facts: RestoreFacts }
  | { kind: 'create'; template: string; params: CtParams }
  | { kind: 'terraform'; dir: string }

interface Facts {
  way: ContainerWay
  backups: Backup[]
}

async function preflight(cfg: Config, minio: MinioConfig, pve: Pve | undefined, d: MinioDiagnosis, req: Request, report: Report): Promise<Facts> {
  const c = d.container
  if (!pve || !c) {
    if (req.source !== 'auto') throw new DrError('usage', `--from-${req.source} needs minio_ctid: MinIO is not a Proxmox container here, so the container cannot be rebuilt by this tool.`)
    if (d.s3 !== 'up') throw new DrError('prerequisites', `S3 at ${minio.endpoint} does not answer, and MinIO is not a Proxmox container here (no minio_ctid): it cannot be rebuilt by this tool. Nothing was changed.`, 'Start or repair MinIO where it runs (NAS, host), then run this again: it recreates the buckets, versioning and states.')
    return { way: { kind: 'none', why: 'MinIO is not a Proxmox container here (no minio_ctid): its container cannot be rebuilt by this tool' }, backups: [] }
  }
  const backups = await report.check(`Backups of CT ${c.ctid}`, async (dd) => {
    const list = sortBackups(await pve.backups(cfg.backupStorage, c.ctid)).filter((b) => b.type === 'lxc')
    dd.push(list[0] ? `${list.length} on '${cfg.backupStorage}', newest ${backupLocalTime(list[0]).replace('T', ' ')}` : `none on '${cfg.backupStorage}'`)
    return list
  })
  const s3Down = d.s3 !== 'up'
  if (req.source === 'scratch' && c.state !== 'missing') {
    throw new DrError('prerequisites', `CT ${c.ctid} exists (${c.state}): a rebuild from scratch needs its ID free. Nothing was changed.`, `Restore it from its backup instead (leave out --from-scratch), or remove it yourself after checking it: pct destroy ${c.ctid} (on the node).`)
  }
  if (req.source === 'backup' && !backups[0]) throw new DrError('prerequisites', `No backup of CT ${c.ctid} on storage '${cfg.backupStorage}': nothing to restore from. Nothing was changed.`, 'Rebuild it from zero instead: --from-scratch.')
  if (c.state === 'running' && !s3Down && req.source !== 'backup') return { way: { kind: 'none', why: `CT ${c.ctid} runs and S3 answers` }, backups }
  if (c.state === 'stopped' && req.source === 'auto') return { way: { kind: 'start' }, backups }
  if (c.state !== 'missing' || (req.source !== 'scratch' && backups[0])) {
    if (!backups[0]) throw new DrError('prerequisites', `CT ${c.ctid} is ${c.state} but S3 does not answer, and there is no backup to restore it from. Nothing was changed.`, `Look inside it (pct exec ${c.ctid} -- systemctl status minio), or remove it (pct destroy ${c.ctid}) and run this again to rebuild it from zero.`)
    // The shared guest flow's preflight: backup storage, the archive read end to end, the target, space.
    const request: GuestRestoreRequest = { task: 'rebuild:minio', vmid: c.ctid, backup: backups[0].volid, yes: req.yes, force: req.force, dryRun: req.dryRun, tfDir: req.tfDir }
    const facts = await preflightRestore(pve, cfg, request, report)
    return { way: { kind: 'restore', backup: facts.backup, request, facts }, backups }
  }
  // From scratch: the minio environment itself, when it is Terraform with a local state; else pct create.
  const local = localStateEnvironment(cfg)
  if (local) return { way: { kind: 'terraform', dir: local.env.dir }, backups }
  const template = await report.check('Container template on the node', (dd) => findTemplate(cfg, pve, dd))
  const backupConf: GuestConfig | undefined = backups[0] ? await pve.extractConfig(backups[0].volid) : undefined
  const params = await report.check(`Parameters of CT ${c.ctid}`, async (dd) => {
    const p = await containerParams(cfg, minio, backupConf)
    dd.push(`from ${p.sources.join(', ')}`)
    return p
  })
  return { way: { kind: 'create', template, params }, backups }
}

/** A container template present on the node: minio_template when set, else the newest Debian one. */
async function findTemplate(cfg: Config, pve: Pve, d: string[]): Promise<string> {
  const wanted = process.env.HDR_MINIO_TEMPLATE || (cfg.vars.get('minio_template')?.value as string | undefined)
  const storages = (await pve.storages('vztmpl')).filter((s) => s.active && s.content.includes('vztmpl'))
  const all: Array<{ volid: string; ctime: number }> = []
  for (const st of storages) {
    const path = `/nodes/${pve.node}/storage/${st.storage}/content`
    const list = await pve.get(path, ['--content', 'vztmpl'])
    if (Array.isArray(list)) for (const o of list as Array<Record<string, unknown>>) if (typeof o.volid === 'string') all.push({ volid: o.volid, ctime: Number(o.ctime ?? 0) })
  }
  const names = all.map((t) => t.volid)
  if (wanted) {
    const hit = all.find((t) => t.volid === wanted || t.volid.endsWith(`/${wanted}`))
    if (!hit) throw new DrError('prerequisites', `Container template ${wanted} (minio_template) is not on node '${pve.node}' (templates there: ${names.join(', ') || 'none'}). Nothing was changed.`, `Download it on the node: pveam update && pveam download local ${wanted.split('/').at(-1)}`)
    d.push(hit.volid)
    return hit.volid
  }
  const pick = all.filter((t) => /debian-\d+-standard/.test(t.volid)).sort((a, b) => b.volid.localeCompare(a.volid, undefined, { numeric: true }))[0] ?? all.sort((a, b) => b.ctime - a.ctime)[0]
  if (!pick) throw new DrError('prerequisites', `No container template on node '${pve.node}' (storages with templates: ${storages.map((s) => s.storage).join(', ') || 'none'}): a new MinIO CT cannot be created. Nothing was changed.`, 'Download one on the node: pveam update && pveam available --section system && pveam download local debian-12-standard_12.7-1_amd64.tar.zst')
  d.push(pick.volid)
  return pick.volid
}

// ---- plan ----

function planRebuild(cfg: Config, minio: MinioConfig, pve: Pve | undefined, s3: S3, d: MinioDiagnosis, f: Facts, req: Request, run: RunState, report: Report): Plan {
  const actions: Action[] = []
  const warnings: string[] = []
  const way = f.way
  const ctid = d.container?.ctid
  const facts: Plan['facts'] = [['MinIO', `${minio.endpoint}${ctid !== undefined ? ` (CT ${ctid})` : ''}`]]
  let waitS3 = false
  if (way.kind === 'none') facts.push(['Container', way.why])
  if (way.kind === 'start' && pve && ctid !== undefined) {
    facts.push(['Container', `CT ${ctid} is stopped: start it`])
    const argv = ['pct', 'start', String(ctid)]
    actions.push(nodeAction(pve, `Start CT ${ctid}`, argv, run, `CT ${ctid} started`))
    waitS3 = true
  }
  if (way.kind === 'restore' && pve && ctid !== undefined) {
    // The guest itself comes back with restore:vm's flow (safety backup, stop, restore, start); its proof
    // here is S3 answering, not an SSH login (a MinIO CT need not run sshd).
    const guest = planRestore(pve, cfg, way.request, way.facts, run.guest)
    facts.push(['Container', `restore CT ${ctid} from ${way.backup.volid} (${backupLocalTime(way.backup).replace('T', ' ')} node time)`])
    facts.push(...guest.facts.filter(([l]) => l !== 'Then').map(([l, v]) => [`  ${l}`, v] as [string, string]))
    warnings.push(...guest.warnings.filter((w) => !/ping and SSH/i.test(w)))
    for (const a of guest.actions) actions.push({ ...a, run: async (dd) => { await a.run(dd); run.changed.push(a.title) } })
    waitS3 = true
  }
  if (way.kind === 'create' && pve) {
    const p = way.params
    facts.push(['Container', `new CT ${p.ctid} '${p.hostname}' from ${way.template}`])
    facts.push(['Parameters', `${p.ip}/${p.cidr}${p.gateway ? ` gw ${p.gateway}` : ''} on ${p.bridge}, ${p.cores} cores, ${p.memory} MiB, ${p.rootfsGb} GiB on ${p.rootfsStorage} (from ${p.sources.join(', ')})`])
    const url = minioBinaryUrl(cfg)
    facts.push(['Install', `MinIO from ${url}, ports ${minio.port}/${minio.consolePort}, the root credentials of the configuration`])
    const create = pctCreateArgv(p, way.template)
    actions.push(nodeAction(pve, `Create CT ${p.ctid} (${p.hostname})`, create, run, `CT ${p.ctid} created`, 10 * 60_000))
    actions.push(nodeAction(pve, `Start CT ${p.ctid}`, ['pct', 'start', String(p.ctid)], run, `CT ${p.ctid} started`))
    const install = ['pct', 'exec', String(p.ctid), '--', 'bash', '-c', INSTALL_SCRIPT, 'hdr', url, String(minio.port), String(minio.consolePort)]
    actions.push({
      title: `Install and start MinIO in CT ${p.ctid}`,
      command: `pct exec ${p.ctid} -- bash -c '<install script: docs/rebuild-minio.md>' hdr ${url} ${minio.port} ${minio.consolePort}  (credentials on stdin)`,
      mutates: true,
      run: async () => {
        const r = await pve.ssh.run(install, { input: minioEnvFile(minio), timeoutMs: 15 * 60_000 })
        if (r.exitCode !== 0) throw new DrError('failed', `Installing MinIO in CT ${p.ctid} failed: ${lastLine(r.stderr || r.stdout)}.`, `The CT is created and running; look inside: pct exec ${p.ctid} -- bash`)
        run.changed.push(`MinIO installed in CT ${p.ctid}`)
      },
    })
    waitS3 = true
  }
  if (way.kind === 'terraform') {
    facts.push(['Container', `terraform apply of the minio environment (${way.dir}): it keeps a local state, so it can recreate the CT`])
    actions.push({
      title: 'terraform apply in the minio environment',
      command: `terraform -chdir=${way.dir} apply -auto-approve -input=false`,
      mutates: true,
      run: async (dd) => {
        const r = await terraform(way.dir, ['apply', '-auto-approve', '-input=false'], { timeoutMs: 30 * 60_000 })
        if (r.exitCode !== 0) throw new DrError('failed', `terraform apply in ${way.dir} failed (exit ${r.exitCode}): ${lastLines(r)}`)
        dd.push(lastLines(r, 1))
        run.changed.push('terraform apply of the minio environment')
      },
    })
    waitS3 = true
  }
  if (waitS3) {
    actions.push({
      title: `Wait for S3 on ${minio.endpoint} (up to ${Math.round(req.waitMs / 1000)} s)`,
      mutates: true,
      run: async (dd) => void dd.push(await awaitS3(s3, minio, ctid, req.waitMs)),
    })
  }

  // Buckets: every one the homelab names, versioning Enabled; none deleted.
  const wanted = wantedBuckets(cfg, minio)
  const known = new Map(d.buckets.map((b) => [b.name, b]))
  facts.push(['Buckets', wanted.map((w) => `${w.name} (${w.why.join(', ')}): ${waitS3 || d.s3 !== 'up' ? 'checked after the rebuild' : known.get(w.name)?.exists ? `versioning ${known.get(w.name)?.versioning}` : 'missing'}`).join('; ')])
  for (const b of d.buckets.filter((x) => x.versioning === 'Suspended')) warnings.push(`Versioning of bucket ${b.name} is Suspended: it will be re-enabled (without it, no state version can be restored).`)
  const needBuckets = waitS3 || d.s3 !== 'up' || d.buckets.some((b) => !b.exists || b.versioning !== 'Enabled')
  if (needBuckets) {
    actions.push({
      title: `Buckets ${wanted.map((w) => w.name).join(', ')} present with versioning Enabled`,
      mutates: true,
      run: async (dd) => {
        const present = await listBuckets(s3)
        for (const w of wanted) {
          if (!present.includes(w.name)) {
            // a new bucket starts unversioned: versioning is part of creating it, one change
            await createBucket(s3, w.name)
            await enableVersioning(s3, w.name)
            run.changed.push(`bucket ${w.name} created`)
            dd.push(`${w.name}: created, versioning Enabled`)
            continue
          }
          const v = await bucketVersioning(s3, w.name)
          if (v !== 'Enabled') {
            await enableVersioning(s3, w.name)
            run.changed.push(`versioning of ${w.name} enabled (was ${v})`)
            dd.push(`${w.name}: versioning enabled (was ${v})`)
          } else dd.push(`${w.name}: versioning Enabled`)
        }
      },
    })
  }

  // States (US3.2): only with --push-state; only where the object is missing.
  const envs = environmentsOnMinio(cfg, minio)
  if (req.pushState) {
    for (const e of envs) {
      const local = newestLocalState(e, req.stateFrom)
      const st = d.states.find((s) => s.env === e.name)
      const key = st?.key ?? e.key!
      if (st?.exists && !waitS3) continue
      if (!local) {
        warnings.push(`No local copy of the state of ${e.name} (${req.stateFrom ?? 'the snapshot mirror'}): it cannot be pushed back.`)
        continue
      }
      actions.push({
        title: `Push the state of ${e.name}: serial ${local.state.serial}, lineage ${local.state.lineage} → s3://${e.bucket}/${key}`,
        command: `from ${local.file} (only if the object is missing)`,
        mutates: true,
        run: async (dd) => {
          const r = await pushState(s3, { env: e, bucket: e.bucket!, key, local }, true)
          if (r.kind === 'uploaded') {
            run.changed.push(`state of ${e.name} uploaded (serial ${r.serial})`)
            dd.push(`uploaded from ${r.file}${r.versionId ? `, version ${r.versionId}` : ''}`)
            report.facts[`pushed:${e.name}`] = { serial: r.serial, lineage: r.lineage, file: r.file, versionId: r.versionId }
          } else if (r.kind === 'kept') dd.push(r.reason)
        },
      })
    }
  } else if (d.states.some((s) => !s.exists && s.local)) {
    warnings.push(`States missing on S3 with a local copy: ${d.states.filter((s) => !s.exists && s.local).map((s) => s.env).join(', ')}. Add --push-state to upload them.`)
  }
  facts.push(['Then', `terraform init + state list in ${envs.map((e) => e.name).join(', ') || 'no environment'}`])
  return { title: `Rebuild MinIO (${minio.endpoint})`, facts, actions, warnings }
}

function nodeAction(pve: Pve, title: string, argv: string[], run: RunState, done: string, timeoutMs = 5 * 60_000): Action {
  return {
    title,
    command: commandLine(argv),
    mutates: true,
    run: async () => {
      const r = await pve.ssh.run(argv, { timeoutMs })
      if (r.exitCode !== 0) throw new DrError('failed', `${title} failed: ${lastLine(r.stderr || r.stdout)}.`)
      run.changed.push(done)
    },
  }
}

// ---- act ----

/** Bounded wait, with progress; S3 never answering is exit 5 with what to check. */
async function awaitS3(s3: S3, minio: MinioConfig, ctid: number | undefined, waitMs: number): Promise<string> {
  const p = progress(`Waiting for S3 on ${minio.endpoint}`)
  let lastSaid = 0
  let r
  try {
    r = await waitForS3(s3, waitMs, (secs, last) => {
      p.update(`(${secs} s, ${last})`)
      if (!process.stderr.isTTY && secs - lastSaid >= 10) {
        lastSaid = secs
        say(`  … S3 not answering yet (${secs} s of ${Math.round(waitMs / 1000)} s)`)
      }
    })
  } finally {
    p.stop()
  }
  if (r.ok) return `answered after ${r.attempts} attempt${r.attempts > 1 ? 's' : ''}`
  if (r.last === 'credentials') throw new DrError('verification', `S3 on ${minio.endpoint} answers but refuses the configured credentials.`, `The MinIO that came back has other root credentials: check MINIO_ROOT_USER in /etc/default/minio inside the CT${ctid !== undefined ? ` (pct exec ${ctid} -- cat /etc/default/minio)` : ''}.`)
  const look = ctid !== undefined ? `Check inside CT ${ctid}: pct exec ${ctid} -- systemctl status minio; pct exec ${ctid} -- journalctl -u minio -n 50; that it listens on port ${minio.port} at ${minio.ip} (no firewall, the right address).` : 'Check that MinIO runs where it lives.'
  throw new DrError('verification', `S3 on ${minio.endpoint} did not answer within ${Math.round(waitMs / 1000)} s (${r.attempts} attempts, last: ${r.last}).`, `${look} Then run this again (it resumes from what is there), or --wait longer.`)
}

// ---- verify ----

async function verifyRebuilt(cfg: Config, minio: MinioConfig, pve: Pve | undefined, s3: S3, req: Request, run: RunState, report: Report): Promise<number> {
  const failures: string[] = []
  say('')
  say('Verification:')
  const diag = await diagnoseMinio(cfg, minio, { pve, s3, stateFrom: req.stateFrom })
  report.facts.after = diag
  for (const [status, text] of diagnosisLines(diag)) {
    report.record(text, status)
    if (status === 'failed') failures.push(text)
  }
  const creds = { accessKey: minio.accessKey, secretKey: minio.secretKey }
  for (const env of environmentsOnMinio(cfg, minio)) {
    try {
      await report.check(`${env.name}: reconnected`, async (d) => void d.push(await reconnect(env, creds)), { showFailure: true })
    } catch (e) {
      if (!(e instanceof DrError)) throw e
      failures.push(`${env.name}: ${e.message}`)
    }
  }
  const done = run.changed.length ? `Changed: ${run.changed.join('; ')}.` : 'Nothing needed changing.'
  if (failures.length) {
    const next = diag.states.some((s) => !s.exists && s.local) && !req.pushState ? ['Push the missing states back: npm run rebuild:minio -- --push-state'] : []
    return report.finish({ exitCode: 5, summary: `${mark.fail} MinIO rebuilt, but ${failures.length} check${failures.length > 1 ? 's' : ''} failed: ${failures.join('; ')}. ${done}`, next: [...next, ...run.guest.undo] })
  }
  return report.finish({ exitCode: 0, summary: `${mark.ok} MinIO is back on ${minio.endpoint}: buckets versioned, states present, Terraform reconnected. ${done}`, next: run.guest.undo.slice(0, 1) })
}

// Last, so that every declaration above is initialised when the task runs.
export const task = defineTask(spec, async ({ values }) => main(readRequest(values)), import.meta.url)
