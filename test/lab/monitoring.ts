// The lab's monitoring VM (VM 200) on 127.0.0.5: real Prometheus :9090, Alertmanager :9093 and
// node-exporter :9100, a Grafana stand-in :3000 (grafana-stub.mjs), and an sshd :2222 whose PATH
// starts with a `docker` simulator (monitoring/bin/docker) that reports those four as compose services.
//
//   node --import tsx test/lab/monitoring.ts up|down|start|stop|wipe [labDir]
//
// $labDir/monitoring/: config/ (the stack's config; rewritten by start when missing, like a VM that
// terraform recreates), data/ (TSDB, alertmanager, textfile metrics), run/ (pid files), log/, sshd/.
// stop = the VM is off (services and sshd); wipe = stop and delete config/ and data/. All idempotent.
import { spawn, execFileSync } from 'node:child_process'
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { userInfo } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { findPid, installHooks, reachable, waitFor, withLock } from './s3.ts'

export const MON_HOST = '127.0.0.5'
export const PORTS = { prometheus: 9090, alertmanager: 9093, 'node-exporter': 9100, grafana: 3000, ssh: 2222 } as const
export const SERVICES = ['prometheus', 'alertmanager', 'grafana', 'node-exporter'] as const
export type Service = typeof SERVICES[number]

const here = dirname(fileURLToPath(import.meta.url))
const repo = resolve(here, '..', '..')
const tfvars = join(repo, 'test', 'fixtures', 'homelab', 'terraform.tfvars')

/** The Grafana admin login, from the fixture's terraform.tfvars (admin/admin when absent). */
export function grafanaLogin(): { user: string, password: string } {
  const text = existsSync(tfvars) ? readFileSync(tfvars, 'utf8') : ''
  const get = (name: string): string | undefined => new RegExp(`^\\s*${name}\\s*=\\s*"([^"]*)"`, 'm').exec(text)?.[1]
  return { user: get('grafana_admin_user') ?? 'admin', password: get('grafana_admin_password') ?? 'admin' }
}

export async function up(labDir: string): Promise<void> {
  installHooks(labDir, ['monitoring-start', 'monitoring-stop', 'monitoring-wipe'])
  await withLock(join(resolve(labDir), 'monitoring.lock'), () => start(labDir))
}

export async function down(labDir: string): Promise<void> {
  await stop(labDir)
}

/** Boot the VM: sshd, then every service (writing the default config first if there is none). */
export async function start(labDir: string): Promise<void> {
  const d = paths(labDir)
  for (const sub of ['run', 'log', 'data/prometheus', 'data/alertmanager', 'data/textfile']) mkdirSync(join(d.root, sub), { recursive: true })
  if (!existsSync(join(d.config, 'docker-compose.yml'))) writeConfig(d)
  await startSshd(d)
  for (const s of SERVICES) await startService(labDir, s)
}

/** Power the VM off: every service and the sshd. */
export async function stop(labDir: string): Promise<void> {
  const d = paths(labDir)
  for (const s of SERVICES) await stopService(labDir, s)
  await kill(d, 'sshd')
}

/** Stop and delete the stack's config and data (metrics history, silences); the sshd setup stays. */
export async function wipe(labDir: string): Promise<void> {
  const d = paths(labDir)
  await stop(labDir)
  rmSync(d.config, { recursive: true, force: true })
  rmSync(join(d.root, 'data'), { recursive: true, force: true })
}

/** Start one compose service (what `docker compose up -d SERVICE` does on the VM). */
export async function startService(labDir: string, s: Service): Promise<void> {
  const d = paths(labDir)
  if (pidOf(d, s) === undefined) {
    const [exe, ...args] = command(d, s)
    const log = openSync(join(d.log, `${s}.log`), 'a')
    const child = spawn(exe ?? 'false', args, { detached: true, stdio: ['ignore', log, log], cwd: d.root })
    closeSync(log)
    if (child.pid === undefined) throw new Error(`could not start ${s}: ${exe}`)
    writeFileSync(join(d.run, `${s}.pid`), `${child.pid}\n`)
    child.unref()
  }
  await waitFor(`${s} on ${MON_HOST}:${PORTS[s]}`, 20_000, async () => (await fetch(readyUrl(s), { signal: AbortSignal.timeout(1000) })).ok)
}

/** Stop one compose service (a crashed or stopped container). */
export async function stopService(labDir: string, s: Service): Promise<void> {
  await kill(paths(labDir), s)
}

/** Whether a service's process is running (what the docker simulator reports). */
export const serviceRunning = (labDir: string, s: Service): boolean => pidOf(paths(labDir), s) !== undefined

// --- services ----------------------------------------------------------------------------------

interface Paths { root: string, config: string, data: string, run: string, log: string, sshd: string, labDir: string }

function paths(labDir: string): Paths {
  const root = join(resolve(labDir), 'monitoring')
  return { root, config: join(root, 'config'), data: join(root, 'data'), run: join(root, 'run'), log: join(root, 'log'), sshd: join(root, 'sshd'), labDir: resolve(labDir) }
}

const EXES: Record<Service | 'sshd', string> = {
  prometheus: 'prometheus', alertmanager: 'prometheus-alertmanager', 'node-exporter': 'prometheus-node-exporter', grafana: 'node', sshd: 'sshd',
}

function command(d: Paths, s: Service): string[] {
  const at = (port: number): string => `${MON_HOST}:${port}`
  switch (s) {
    case 'prometheus': return ['prometheus', `--config.file=${d.config}/prometheus.yml`, `--storage.tsdb.path=${d.data}/prometheus`,
      `--web.listen-address=${at(PORTS.prometheus)}`, '--web.enable-lifecycle', '--rules.alert.resend-delay=1s']
    case 'alertmanager': return ['prometheus-alertmanager', `--config.file=${d.config}/alertmanager.yml`, `--storage.path=${d.data}/alertmanager`,
      `--web.listen-address=${at(PORTS.alertmanager)}`, '--cluster.listen-address=']
    case 'node-exporter': return ['prometheus-node-exporter', `--web.listen-address=${at(PORTS['node-exporter'])}`,
      `--collector.textfile.directory=${d.data}/textfile`, '--no-collector.systemd']
    case 'grafana': {
      const { user, password } = grafanaLogin()
      return [process.execPath, join(here, 'grafana-stub.mjs'), '--host', MON_HOST, '--port', String(PORTS.grafana),
        '--user', user, '--password', password, '--dashboards', join(d.config, 'grafana', 'dashboards.json'),
        '--datasources', join(d.config, 'grafana', 'datasources.json')]
    }
  }
}

function readyUrl(s: Service): string {
  const base = `http://${MON_HOST}:${PORTS[s]}`
  return s === 'grafana' ? `${base}/api/health` : s === 'node-exporter' ? `${base}/metrics` : `${base}/-/ready`
}

function writeConfig(d: Paths): void {
  mkdirSync(join(d.config, 'grafana'), { recursive: true })
  const target = (port: number): string => `['${MON_HOST}:${port}']`
  writeFileSync(join(d.config, 'prometheus.yml'), `# homelab monitoring (lab): written by test/lab/monitoring.ts
global:
  scrape_interval: 1s
  evaluation_interval: 1s
alerting:
  alertmanagers:
    - static_configs:
        - targets: ${target(PORTS.alertmanager)}
rule_files:
  - rules.yml
scrape_configs:
  - job_name: prometheus
    static_configs: [{ targets: ${target(PORTS.prometheus)} }]
  - job_name: node
    static_configs: [{ targets: ${target(PORTS['node-exporter'])} }]
  - job_name: grafana
    static_configs: [{ targets: ${target(PORTS.grafana)} }]
  - job_name: alertmanager
    static_configs: [{ targets: ${target(PORTS.alertmanager)} }]
`)
  writeFileSync(join(d.config, 'rules.yml'), `groups:
  - name: homelab
    rules:
      - alert: Watchdog
        expr: vector(1)
        labels: { severity: none }
        annotations: { summary: Always firing; proves the alerting pipeline works end to end. }
      - alert: BackupStale
        expr: time() - homelab_backup_last_success_timestamp_seconds > 2 * 86400
        labels: { severity: warning }
        annotations: { summary: 'No successful backup of {{ $labels.vmid }} for two days.' }
`)
  writeFileSync(join(d.config, 'alertmanager.yml'), `route:
  receiver: blackhole
  group_wait: 0s
  group_interval: 1s
receivers:
  - name: blackhole
`)
  writeFileSync(join(d.config, 'docker-compose.yml'), `# what runs on the monitoring VM; the lab runs the same four as plain processes
name: monitoring
services:
  prometheus: { image: 'prom/prometheus:v2.42.0', ports: ['${PORTS.prometheus}:9090'] }
  alertmanager: { image: 'prom/alertmanager:v0.25.0', ports: ['${PORTS.alertmanager}:9093'] }
  grafana: { image: 'grafana/grafana:10.4.2', ports: ['${PORTS.grafana}:3000'] }
  node-exporter: { image: 'prom/node-exporter:v1.5.0', ports: ['${PORTS['node-exporter']}:9100'] }
`)
  writeFileSync(join(d.config, 'grafana', 'dashboards.json'), `${JSON.stringify([
    { uid: 'homelab-overview', title: 'Homelab overview', tags: ['homelab'] },
    { uid: 'node-exporter-full', title: 'Node Exporter Full', tags: ['linux', 'node'] },
    { uid: 'backups', title: 'Backups', tags: ['homelab', 'backup'] },
  ], null, 2)}\n`)
  writeFileSync(join(d.config, 'grafana', 'datasources.json'), `${JSON.stringify([
    { uid: 'prometheus', name: 'Prometheus', type: 'prometheus', url: `http://${MON_HOST}:${PORTS.prometheus}` },
    { uid: 'alertmanager', name: 'Alertmanager', type: 'alertmanager', url: `http://${MON_HOST}:${PORTS.alertmanager}` },
  ], null, 2)}\n`)
  writeFileSync(join(d.data, 'textfile', 'backups.prom'),
    `homelab_backup_last_success_timestamp_seconds{vmid="101"} ${Math.floor(Date.now() / 1000)}\n`)
}

// --- sshd --------------------------------------------------------------------------------------

async function startSshd(d: Paths): Promise<void> {
  mkdirSync(d.sshd, { recursive: true })
  mkdirSync('/run/sshd', { recursive: true }) // privilege separation directory; no systemd to make it
  const key = join(d.labDir, 'ssh', 'id_ed25519')
  if (!existsSync(key)) { // node.ts makes the same key; make it only when it is missing
    mkdirSync(dirname(key), { recursive: true })
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'hdr-lab', '-f', key], { stdio: 'ignore' })
  }
  const hostKey = join(d.sshd, 'ssh_host_ed25519_key')
  if (!existsSync(hostKey)) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'monitoring', '-f', hostKey], { stdio: 'ignore' })
  writeFileSync(join(d.sshd, 'authorized_keys'), readFileSync(`${key}.pub`))
  const path = [join(here, 'monitoring', 'bin'), '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].join(':')
  const conf = join(d.sshd, 'sshd_config')
  writeFileSync(conf, `# the monitoring VM's sshd (lab); written by test/lab/monitoring.ts
ListenAddress ${MON_HOST}:${PORTS.ssh}
HostKey ${hostKey}
PidFile ${d.run}/sshd.pid
AuthorizedKeysFile ${d.sshd}/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers ${userInfo().username}
SetEnv PATH=${path} HDR_LAB_DIR=${d.labDir}
LogLevel VERBOSE
`)
  if (pidOf(d, 'sshd') === undefined) {
    rmSync(join(d.run, 'sshd.pid'), { force: true })
    execFileSync('/usr/sbin/sshd', ['-f', conf, '-E', join(d.log, 'sshd.log')], { stdio: 'ignore' })
  }
  await waitFor(`sshd on ${MON_HOST}:${PORTS.ssh}`, 10_000, () => reachable(MON_HOST, PORTS.ssh))
}

// --- processes ---------------------------------------------------------------------------------

/** A service's process, found by executable and its config path (pid files can be lost with a deleted lab folder). */
function pidOf(d: Paths, name: Service | 'sshd'): number | undefined {
  const marker = { prometheus: `${d.config}/prometheus.yml`, alertmanager: `${d.config}/alertmanager.yml`, 'node-exporter': `${d.data}/textfile`,
    grafana: `${d.config}/grafana/dashboards.json`, sshd: `${d.sshd}/sshd_config` }[name]
  return findPid(EXES[name], marker)
}

async function kill(d: Paths, name: Service | 'sshd'): Promise<void> {
  const pid = pidOf(d, name)
  if (pid !== undefined) {
    process.kill(pid, 'SIGTERM')
    await waitFor(`${name} to exit`, 10_000, async () => pidOf(d, name) === undefined)
      .catch(async () => { process.kill(pid, 'SIGKILL'); await waitFor(`${name} to die`, 5000, async () => pidOf(d, name) === undefined) })
  }
  rmSync(join(d.run, `${name}.pid`), { force: true })
}

// --- CLI ---------------------------------------------------------------------------------------

const actions: Record<string, (labDir: string) => Promise<void>> = { up, down, start, stop, wipe }
const isService = (s: string | undefined): s is Service => SERVICES.some(x => x === s)
if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  // service-start|service-stop LABDIR SERVICE are for the docker simulator
  const [cmd, dir, svc] = process.argv.slice(2)
  const labDir = dir ?? process.env.HDR_LAB_DIR ?? '/tmp/hdr-lab'
  const action = cmd === 'service-start' && isService(svc) ? async (l: string) => startService(l, svc)
    : cmd === 'service-stop' && isService(svc) ? async (l: string) => stopService(l, svc)
      : cmd === undefined ? undefined : actions[cmd]
  if (action === undefined) {
    console.error('usage: node --import tsx test/lab/monitoring.ts up|down|start|stop|wipe [labDir]')
    process.exitCode = 2
  } else {
    action(labDir).catch((e: unknown) => { console.error(e); process.exitCode = 1 })
  }
}
