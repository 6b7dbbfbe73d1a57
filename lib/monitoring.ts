// The monitoring stack (US4): where it answers and the read-only checks that prove it works — the VM
// running, its Docker services (over SSH), Prometheus ready with every target up, Alertmanager ready and
// active in Prometheus, a synthetic alert through Alertmanager, Grafana healthy with its datasources
// reachable and its dashboards listed. rebuild:monitoring runs them before and after a restore;
// dr:check runs them as they are.
//
//   const results = await checkMonitoring(cfg, { pve, waitMs: 120_000, onResult: (r) => … })
//   results.every((r) => r.ok)
//
// Exported API (docs/architecture.md): checkMonitoring, monitoringSite, parseComposePs, and the types
// CheckResult, CheckOptions, MonitoringSite, ComposeService.
import { requireMonitoring, type Config } from './config.ts'
import { DrError } from './errors.ts'
import { readOccupant, label } from './guest.ts'
import { registerSecret } from './output.ts'
import type { Pve } from './pve.ts'
import { Ssh } from './ssh.ts'

/** One check: a line of the report. */
export interface CheckResult {
  title: string
  ok: boolean
  /** What was found (ok), or what is wrong, naming the service or target (not ok). */
  detail: string
}

export interface CheckOptions {
  /** Adds `VM N running` first (and stops there when it is not). Without it, the VM is not looked at. */
  pve?: Pve
  /** How long the checks that can be waited for (services, targets, Alertmanager) may wait. Default 0: one look. */
  waitMs?: number
  /** Post a synthetic alert to Alertmanager, see it, expire it. Default true; false in a dry run. */
  synthetic?: boolean
  /** Called with each result as soon as it is known (to print it live). */
  onResult?: (r: CheckResult) => void
}

/** Where the monitoring stack answers, from the configuration (docs/rebuild-monitoring.md). */
export interface MonitoringSite {
  vmid: number
  ip: string
  prometheus: string
  alertmanager: string
  grafana: string
  /** SSH to the VM: monitoring_ssh_user/port, else guest_ssh_user/port, else root:22. */
  ssh: { user: string; port: number }
  /** The folder of the compose project on the VM (monitoring_compose_dir, default /opt/monitoring). */
  composeDir: string
  /** Services that must exist (monitoring_services), else whatever compose lists. */
  services: string[] | undefined
  grafanaAuth: string | undefined
}

export interface ComposeService {
  service: string
  state: string
  /** '' when the service has no healthcheck. */
  health: string
  status: string
}

export const SYNTHETIC_ALERT = 'HomelabDrSynthetic'

export function monitoringSite(cfg: Config): MonitoringSite {
  const m = requireMonitoring(cfg)
  const raw = (k: string) => cfg.vars.get(k)?.value
  const str = (...keys: string[]) => keys.map(raw).find((v): v is string => typeof v === 'string' && v !== '')
  const port = (...keys: string[]) => {
    for (const k of keys) {
      const v = raw(k)
      const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : undefined
      if (n !== undefined) {
        if (!Number.isInteger(n) || n < 1 || n > 65535) throw new DrError('prerequisites', `${k} = ${JSON.stringify(v)} in ${cfg.vars.get(k)?.file}: expected a port from 1 to 65535.`)
        return n
      }
    }
    return 22
  }
  const user = str('monitoring_ssh_user', 'guest_ssh_user') ?? 'root'
  if (!/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(user)) throw new DrError('prerequisites', `Invalid SSH user for the monitoring VM: ${JSON.stringify(user)}.`)
  const composeDir = str('monitoring_compose_dir') ?? '/opt/monitoring'
  const list = raw('monitoring_services')
  const services = Array.isArray(list) && list.every((s) => typeof s === 'string') ? (list as string[]) : undefined
  const gUser = str('grafana_admin_user') ?? 'admin'
  const gPass = str('grafana_admin_password')
  registerSecret(gPass)
  const http = (p: number) => `http://${m.ip.includes(':') ? `[${m.ip}]` : m.ip}:${p}`
  return {
    vmid: m.vmid, ip: m.ip,
    prometheus: http(m.prometheusPort), alertmanager: http(m.alertmanagerPort), grafana: http(m.grafanaPort),
    ssh: { user, port: port('monitoring_ssh_port', 'guest_ssh_port') },
    composeDir, services,
    grafanaAuth: gPass === undefined ? undefined : `Basic ${Buffer.from(`${gUser}:${gPass}`).toString('base64')}`,
  }
}

/**
 * Every check, in order, each a result. With `pve`, the VM's status comes first and a VM that is not
 * running ends the list (nothing else can answer). Never throws for a failed check; throws only for
 * a configuration error (no monitoring settings).
 */
export async function checkMonitoring(cfg: Config, opts: CheckOptions = {}): Promise<CheckResult[]> {
  const site = monitoringSite(cfg)
  const deadline = Date.now() + (opts.waitMs ?? 0)
  const results: CheckResult[] = []
  const add = (r: CheckResult) => {
    results.push(r)
    opts.onResult?.(r)
    return r
  }
  if (opts.pve) {
    const pve = opts.pve
    if (!add(await until(deadline, () => checkVm(pve, site))).ok) return results
  }
  // One SSH connection to the VM for every attempt (multiplexed), closed at the end.
  const vm = new Ssh({ name: 'monitoring', host: site.ip, port: site.ssh.port, user: site.ssh.user })
  try {
    add(await until(deadline, () => checkServices(site, vm)))
  } finally {
    await vm.close()
  }
  add(await until(deadline, () => checkReady('Prometheus ready', `${site.prometheus}/-/ready`)))
  add(await until(deadline, () => checkTargets(site)))
  add(await until(deadline, () => checkReady('Alertmanager ready', `${site.alertmanager}/-/ready`)))
  add(await until(deadline, () => checkAlertmanagerListed(site)))
  if (opts.synthetic !== false) add(await checkSyntheticAlert(site))
  add(await until(deadline, () => checkGrafanaHealth(site)))
  add(await until(deadline, () => checkDatasources(site)))
  add(await until(deadline, () => checkDashboards(site)))
  return results
}

/** Retries a check until it passes or the deadline passes; returns the last result. */
async function until(deadline: number, fn: () => Promise<CheckResult>): Promise<CheckResult> {
  for (;;) {
    const r = await fn()
    if (r.ok || Date.now() >= deadline) return r
    await new Promise((res) => setTimeout(res, 1000))
  }
}

// ---- the VM and its services ----

async function checkVm(pve: Pve, site: MonitoringSite): Promise<CheckResult> {
  const o = await readOccupant(pve, site.vmid)
  const title = `VM ${site.vmid} running`
  if (!o) return { title, ok: false, detail: `VM ${site.vmid} does not exist on node '${pve.node}'` }
  if (o.type !== 'qemu') return { title, ok: false, detail: `ID ${site.vmid} holds ${label(o.type, o.vmid, o.config)}, not the monitoring VM` }
  return { title: `${label(o.type, o.vmid, o.config)} running`, ok: o.status === 'running', detail: o.status === 'running' ? '' : `it is ${o.status}` }
}

async function checkServices(site: MonitoringSite, ssh: Ssh): Promise<CheckResult> {
  const title = `Docker services on ${site.ssh.user}@${site.ip}`
  try {
    await ssh.connect()
    const r = await ssh.runScript('cd "$1" 2>/dev/null || cd; exec docker compose ps --all --format json', [site.composeDir], { timeoutMs: 60_000 })
    if (r.exitCode !== 0) return { title, ok: false, detail: `docker compose ps failed: ${(r.stderr || r.stdout).trim().split('\n').at(-1) ?? `exit ${r.exitCode}`}` }
    const list = parseComposePs(r.stdout)
    const bad: string[] = []
    for (const name of site.services ?? []) if (!list.some((s) => s.service === name)) bad.push(`${name} missing`)
    for (const s of list) {
      if (s.state !== 'running') bad.push(`${s.service} ${s.state}${s.status ? ` (${s.status})` : ''}`)
      else if (s.health && s.health !== 'healthy') bad.push(`${s.service} ${s.health}`)
    }
    if (list.length === 0) bad.push(`no services (no compose project in ${site.composeDir}?)`)
    if (bad.length) return { title, ok: false, detail: bad.join(', ') }
    return { title, ok: true, detail: `${list.length} running: ${list.map((s) => `${s.service}${s.health ? ` (${s.health})` : ''}`).join(', ')}` }
  } catch (e) {
    if (!(e instanceof DrError)) throw e
    const why = /over SSH \([^)]*\): (.*?)\.?$/.exec(e.message)?.[1] ?? e.message
    return { title, ok: false, detail: `no SSH login to ${site.ssh.user}@${site.ip}:${site.ssh.port}: ${why}` }
  }
}

/** `docker compose ps --format json`: one object per line (Compose ≥ 2.21) or one array (older). */
export function parseComposePs(stdout: string): ComposeService[] {
  const text = stdout.trim()
  if (!text) return []
  let rows: unknown[]
  try {
    rows = text.startsWith('[') ? (JSON.parse(text) as unknown[]) : text.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as unknown)
  } catch {
    throw new DrError('failed', `docker compose ps --format json printed something that is not JSON: ${JSON.stringify(text.slice(0, 80))}`)
  }
  return rows.map((r) => {
    const o = (r ?? {}) as Record<string, unknown>
    const s = (k: string) => (typeof o[k] === 'string' ? (o[k] as string) : '')
    return { service: s('Service') || s('Name'), state: s('State') || 'unknown', health: s('Health'), status: s('Status') }
  })
}

// ---- HTTP ----

async function get(url: string, auth?: string): Promise<{ status: number; body: unknown; text: string }> {
  const r = await fetch(url, { headers: auth ? { Authorization: auth } : {}, signal: AbortSignal.timeout(5000) })
  const text = await r.text()
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    body = undefined
  }
  return { status: r.status, body, text }
}

/** 'connection refused', 'no answer in 5 s', … from a fetch failure. */
function why(e: unknown): string {
  const c = (e as { cause?: { code?: string } })?.cause?.code
  if (c === 'ECONNREFUSED') return 'connection refused'
  if (c === 'EHOSTUNREACH' || c === 'ENETUNREACH') return 'host unreachable'
  if (e instanceof Error && (e.name === 'TimeoutError' || e.name === 'AbortError')) return 'no answer in 5 s'
  return e instanceof Error ? e.message : String(e)
}

async function checkReady(title: string, url: string): Promise<CheckResult> {
  try {
    const r = await get(url)
    return { title, ok: r.status === 200, detail: r.status === 200 ? '' : `${url}: HTTP ${r.status}` }
  } catch (e) {
    return { title, ok: false, detail: `${url}: ${why(e)}` }
  }
}

interface Target { labels?: Record<string, string>; scrapeUrl?: string; health?: string; lastError?: string }

async function checkTargets(site: MonitoringSite): Promise<CheckResult> {
  const title = 'Prometheus targets up'
  try {
    const r = await get(`${site.prometheus}/api/v1/targets?state=active`)
    const targets = ((r.body as { data?: { activeTargets?: Target[] } })?.data?.activeTargets ?? [])
    if (targets.length === 0) return { title, ok: false, detail: 'no active targets (yet)' }
    const name = (t: Target) => `${t.labels?.job ?? '?'} ${t.labels?.instance ?? t.scrapeUrl ?? ''}`.trim()
    const down = targets.filter((t) => t.health !== 'up')
    if (down.length) return { title, ok: false, detail: `${down.length} of ${targets.length} not up: ${down.map((t) => `${name(t)} ${t.health ?? 'unknown'}${t.lastError ? ` (${t.lastError})` : ''}`).join('; ')}` }
    return { title, ok: true, detail: `${targets.length}/${targets.length}: ${[...new Set(targets.map((t) => t.labels?.job ?? '?'))].join(', ')}` }
  } catch (e) {
    return { title, ok: false, detail: `${site.prometheus}: ${why(e)}` }
  }
}

async function checkAlertmanagerListed(site: MonitoringSite): Promise<CheckResult> {
  const title = 'Alertmanager active in Prometheus'
  try {
    const r = await get(`${site.prometheus}/api/v1/alertmanagers`)
    const urls = ((r.body as { data?: { activeAlertmanagers?: Array<{ url?: string }> } })?.data?.activeAlertmanagers ?? []).map((a) => a.url ?? '')
    const host = new URL(site.alertmanager).host
    const mine = urls.filter((u) => u.includes(`//${host}/`))
    if (mine.length) return { title, ok: true, detail: mine.join(', ') }
    return { title, ok: false, detail: urls.length ? `Prometheus sends alerts to ${urls.join(', ')}, not to ${host}` : 'Prometheus lists no active Alertmanager' }
  } catch (e) {
    return { title, ok: false, detail: `${site.prometheus}: ${why(e)}` }
  }
}

/**
 * An alert posted to Alertmanager (alertname HomelabDrSynthetic, severity none), read back, then
 * expired (posted again with endsAt now): resolved alerts leave GET /api/v2/alerts.
 */
async function checkSyntheticAlert(site: MonitoringSite): Promise<CheckResult> {
  const title = 'Synthetic alert through Alertmanager'
  const run = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`
  const labels = { alertname: SYNTHETIC_ALERT, severity: 'none', source: 'homelab-dr', run }
  const annotations = { summary: 'homelab-dr checks the alerting path; expires at once.' }
  const post = (endsAt: Date) => fetch(`${site.alertmanager}/api/v2/alerts`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, signal: AbortSignal.timeout(5000),
    body: JSON.stringify([{ labels, annotations, startsAt: new Date(Date.now() - 1000).toISOString(), endsAt: endsAt.toISOString() }]),
  })
  const listed = async () => {
    const r = await get(`${site.alertmanager}/api/v2/alerts?filter=${encodeURIComponent(`run="${run}"`)}`)
    return Array.isArray(r.body) && r.body.length > 0
  }
  try {
    const p = await post(new Date(Date.now() + 10 * 60_000))
    if (!p.ok) return { title, ok: false, detail: `POST ${site.alertmanager}/api/v2/alerts: HTTP ${p.status} ${(await p.text()).trim()}` }
    if (!(await poll(listed, true, 5000))) return { title, ok: false, detail: 'posted, but Alertmanager does not list it' }
    const x = await post(new Date())
    if (!x.ok) return { title, ok: false, detail: `could not expire it: HTTP ${x.status}` }
    if (!(await poll(listed, false, 5000))) return { title, ok: false, detail: 'received, but still active after it was expired' }
    return { title, ok: true, detail: `${SYNTHETIC_ALERT} received, then expired` }
  } catch (e) {
    return { title, ok: false, detail: `${site.alertmanager}: ${why(e)}` }
  }
}

async function poll(fn: () => Promise<boolean>, want: boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms
  for (;;) {
    if ((await fn()) === want) return true
    if (Date.now() >= end) return false
    await new Promise((r) => setTimeout(r, 200))
  }
}

// ---- Grafana ----

async function checkGrafanaHealth(site: MonitoringSite): Promise<CheckResult> {
  const title = 'Grafana healthy'
  try {
    const r = await get(`${site.grafana}/api/health`)
    const h = (r.body ?? {}) as { database?: string; version?: string }
    if (r.status !== 200 || h.database !== 'ok') return { title, ok: false, detail: `HTTP ${r.status}, database ${h.database ?? 'unknown'}` }
    return { title, ok: true, detail: `version ${h.version ?? '?'}, database ok` }
  } catch (e) {
    return { title, ok: false, detail: `${site.grafana}: ${why(e)}` }
  }
}

const noLogin = 'no Grafana login: set grafana_admin_password (and grafana_admin_user) in terraform.tfvars'

async function checkDatasources(site: MonitoringSite): Promise<CheckResult> {
  const title = 'Grafana datasources reachable'
  if (!site.grafanaAuth) return { title, ok: false, detail: noLogin }
  try {
    const r = await get(`${site.grafana}/api/datasources`, site.grafanaAuth)
    if (r.status !== 200 || !Array.isArray(r.body)) return { title, ok: false, detail: `GET /api/datasources: HTTP ${r.status}${r.status === 401 ? ' (check grafana_admin_user / grafana_admin_password)' : ''}` }
    const list = r.body as Array<{ uid?: string; name?: string }>
    if (list.length === 0) return { title, ok: false, detail: 'no datasources' }
    const lines: string[] = []
    let ok = true
    for (const d of list) {
      const h = await get(`${site.grafana}/api/datasources/uid/${encodeURIComponent(d.uid ?? '')}/health`, site.grafanaAuth)
      const b = (h.body ?? {}) as { status?: string; message?: string }
      if (h.status === 200 && b.status === 'OK') lines.push(`${d.name} ok`)
      else {
        ok = false
        lines.push(`${d.name} ${b.message ?? `HTTP ${h.status}`}`)
      }
    }
    return { title, ok, detail: lines.join(', ') }
  } catch (e) {
    return { title, ok: false, detail: `${site.grafana}: ${why(e)}` }
  }
}

async function checkDashboards(site: MonitoringSite): Promise<CheckResult> {
  const title = 'Grafana dashboards'
  if (!site.grafanaAuth) return { title, ok: false, detail: noLogin }
  try {
    const r = await get(`${site.grafana}/api/search?type=dash-db`, site.grafanaAuth)
    if (r.status !== 200 || !Array.isArray(r.body)) return { title, ok: false, detail: `GET /api/search: HTTP ${r.status}${r.status === 401 ? ' (check grafana_admin_user / grafana_admin_password)' : ''}` }
    const titles = (r.body as Array<{ title?: string; type?: string }>).filter((d) => (d.type ?? 'dash-db') === 'dash-db').map((d) => d.title ?? '?')
    if (titles.length === 0) return { title, ok: false, detail: 'no dashboards' }
    return { title, ok: true, detail: `${titles.length}: ${titles.join(', ')}` }
  } catch (e) {
    return { title, ok: false, detail: `${site.grafana}: ${why(e)}` }
  }
}
