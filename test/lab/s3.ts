// The lab's "minio" (CT 120): Ceph RADOS Gateway serving versioned S3 on 127.0.0.4:9000.
//
//   node --import tsx test/lab/s3.ts up|down|wipe|stop|start [labDir]
//
// One mon, one memstore OSD and one radosgw, started by hand (no systemd, no mgr), with auth off.
// Data lives in the OSD's memory: stop/start restart only radosgw, so data survives them; down
// kills the cluster and its data. Config, pid files and logs are under $labDir/s3/.
// Everything here is idempotent.
import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { basename, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import {
  CreateBucketCommand, GetBucketVersioningCommand, PutBucketVersioningCommand, S3Client,
} from '@aws-sdk/client-s3'

export const S3_HOST = '127.0.0.4'
export const S3_PORT = 9000
export const S3_ENDPOINT = `http://${S3_HOST}:${S3_PORT}`
export const S3_REGION = 'us-east-1'
export const S3_ACCESS_KEY = 'hdrlabaccess'
export const S3_SECRET_KEY = 'hdrlab-secret-not-for-prod'
export const S3_BUCKETS = ['tfstate', 'backups'] as const

const FSID = '6f1c2a4e-5b3d-4e8f-9a10-0123456789ab'
const MON_ADDR = `v2:${S3_HOST}:3300`
const RGW_NAME = 'client.rgw.lab'
const here = dirname(fileURLToPath(import.meta.url))
// The SDK warns on every process that Node 20 support ends in 2027; the lab knows.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
const run = promisify(execFile)

export const defaultLabDir = (): string => process.env.HDR_LAB_DIR ?? '/tmp/hdr-lab'

/** An S3 client for the lab. RGW answers the SDK's default checksum trailer with 411, hence WHEN_REQUIRED. */
export function s3Client(): S3Client {
  return new S3Client({
    endpoint: S3_ENDPOINT,
    region: S3_REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: S3_ACCESS_KEY, secretAccessKey: S3_SECRET_KEY },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 1,
  })
}

/**
 * The environment for running terraform against the lab backend: lab credentials, no checkpoint calls,
 * no CLI config file (the machines' TF_CLI_CONFIG_FILE points at a missing file and warns), no prompts.
 * TF_DATA_DIR keeps .terraform/ out of the fixture, under $labDir/terraform/<name>/.
 */
export function terraformEnv(labDir: string, name: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    AWS_ACCESS_KEY_ID: S3_ACCESS_KEY,
    AWS_SECRET_ACCESS_KEY: S3_SECRET_KEY,
    CHECKPOINT_DISABLE: '1',
    TF_CLI_CONFIG_FILE: '/dev/null',
    TF_IN_AUTOMATION: '1',
    TF_INPUT: '0',
    TF_DATA_DIR: join(resolve(labDir), 'terraform', name, '.terraform'),
  }
}

/** Start mon, OSD and radosgw (a fresh cluster unless mon and OSD are already running), the lab user and both versioned buckets. */
export async function up(labDir: string): Promise<void> {
  const d = paths(labDir)
  installHooks(labDir, ['s3-start', 's3-stop', 's3-wipe'])
  await withLock(join(resolve(labDir), 's3.lock'), async () => {
    if (!(alive(d, 'mon.a', 'ceph-mon') && alive(d, 'osd.0', 'ceph-osd'))) await createCluster(d)
    await startRgw(d)
    await ensureUser(d)
    await ensureBuckets()
  })
}

/** Kill every daemon; the memstore data goes with the OSD. Logs stay in $labDir/s3/log. */
export async function down(labDir: string): Promise<void> {
  const d = paths(labDir)
  for (const [name, exe] of DAEMONS) await kill(d, name, exe)
  for (const sub of ['mon', 'osd0', 'run', 'ceph.conf', 'monmap']) rmSync(join(d.root, sub), { recursive: true, force: true })
}

/** Stop radosgw only: the endpoint refuses connections, the data stays in the OSD. */
export async function stop(labDir: string): Promise<void> {
  await kill(paths(labDir), RGW_NAME, 'radosgw')
}

/** Start radosgw again (the cluster must be up). */
export async function start(labDir: string): Promise<void> {
  const d = paths(labDir)
  if (!alive(d, 'mon.a', 'ceph-mon') || !alive(d, 'osd.0', 'ceph-osd')) throw new Error(`the lab S3 cluster is not up: run up(${labDir}) first`)
  await startRgw(d)
}

/**
 * Remove every bucket with all its versions and delete markers, like a MinIO rebuilt without data.
 * The S3 user (MinIO's root credentials) stays; radosgw keeps the state it had (running or stopped).
 */
export async function wipe(labDir: string): Promise<void> {
  const d = paths(labDir)
  if (!alive(d, 'mon.a', 'ceph-mon') || !alive(d, 'osd.0', 'ceph-osd')) return // nothing to wipe: no cluster, no data
  const buckets = JSON.parse(await rgwAdmin(d, 'bucket', 'list')) as string[]
  for (const b of buckets) await rgwAdmin(d, 'bucket', 'rm', `--bucket=${b}`, '--purge-objects', '--bypass-gc')
}

/** Whether something accepts TCP connections on host:port. */
export function reachable(host = S3_HOST, port = S3_PORT, timeoutMs = 500): Promise<boolean> {
  return new Promise(ok => {
    const s = connect({ host, port, timeout: timeoutMs })
    const done = (v: boolean): void => { s.destroy(); ok(v) }
    s.once('connect', () => done(true)).once('error', () => done(false)).once('timeout', () => done(false))
  })
}

// --- cluster -----------------------------------------------------------------------------------

interface Paths { root: string, conf: string, run: string, log: string }
const DAEMONS: Array<[string, string]> = [[RGW_NAME, 'radosgw'], ['osd.0', 'ceph-osd'], ['mon.a', 'ceph-mon']]

function paths(labDir: string): Paths {
  const root = join(resolve(labDir), 's3')
  return { root, conf: join(root, 'ceph.conf'), run: join(root, 'run'), log: join(root, 'log') }
}

async function createCluster(d: Paths): Promise<void> {
  for (const [name, exe] of DAEMONS) await kill(d, name, exe)
  rmSync(d.root, { recursive: true, force: true })
  for (const sub of ['mon', 'osd0', 'run', 'log']) mkdirSync(join(d.root, sub), { recursive: true })
  writeFileSync(d.conf, cephConf(d))
  const monmap = join(d.root, 'monmap')
  await run('monmaptool', ['--create', '--addv', 'a', `[${MON_ADDR}]`, '--fsid', FSID, monmap])
  await run('ceph-mon', ['-c', d.conf, '-i', 'a', '--mkfs', '--monmap', monmap])
  await run('ceph-mon', ['-c', d.conf, '-i', 'a'])
  const uuid = randomUUID()
  const id = (await ceph(d, 'osd', 'new', uuid)).trim()
  if (id !== '0') throw new Error(`expected osd id 0, got ${id}`)
  await run('ceph-osd', ['-c', d.conf, '-i', '0', '--mkfs', '--osd-uuid', uuid])
  await run('ceph-osd', ['-c', d.conf, '-i', '0'])
}

function cephConf(d: Paths): string {
  return `# written by test/lab/s3.ts — a one-OSD, in-memory, auth-less Ceph for the lab's S3
[global]
fsid = ${FSID}
mon host = ${MON_ADDR}
mon initial members = a
public addr = ${S3_HOST}
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
keyring = /dev/null
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
osd objectstore = memstore
paxos propose interval = 0.1
run dir = ${d.run}
pid file = ${d.run}/$name.pid
log file = ${d.log}/$name.log
[mon]
mon data = ${d.root}/mon
admin socket = ${d.run}/$name.asok
[osd]
osd data = ${d.root}/osd$id
admin socket = ${d.run}/$name.asok
[${RGW_NAME}]
ms mon client mode = crc
auth client required = none
admin socket = ${d.run}/$name.asok
rgw frontends = beast endpoint=${S3_HOST}:${S3_PORT}
rgw data = ${d.root}/rgw
rgw dns name = ${S3_HOST}
`
}

async function startRgw(d: Paths): Promise<void> {
  if (!alive(d, RGW_NAME, 'radosgw')) {
    mkdirSync(join(d.root, 'rgw'), { recursive: true })
    await run('radosgw', ['-c', d.conf, '-n', RGW_NAME])
  }
  await waitFor(`radosgw on ${S3_ENDPOINT}`, 30_000, async () => {
    const r = await fetch(`${S3_ENDPOINT}/`, { signal: AbortSignal.timeout(1000) }).catch(() => undefined)
    return r?.status === 200
  })
}

async function ensureUser(d: Paths): Promise<void> {
  const info = await rgwAdmin(d, 'user', 'info', '--uid=hdrlab').catch(() => '')
  if (info.includes(S3_ACCESS_KEY)) return
  await rgwAdmin(d, 'user', 'create', '--uid=hdrlab', '--display-name=homelab-dr lab',
    `--access-key=${S3_ACCESS_KEY}`, `--secret-key=${S3_SECRET_KEY}`)
}

async function ensureBuckets(): Promise<void> {
  const s3 = s3Client()
  try {
    for (const Bucket of S3_BUCKETS) {
      await s3.send(new CreateBucketCommand({ Bucket })).catch((e: Error) => {
        if (e.name !== 'BucketAlreadyOwnedByYou' && e.name !== 'BucketAlreadyExists') throw e
      })
      const v = await s3.send(new GetBucketVersioningCommand({ Bucket }))
      if (v.Status !== 'Enabled') await s3.send(new PutBucketVersioningCommand({ Bucket, VersioningConfiguration: { Status: 'Enabled' } }))
    }
  } finally { s3.destroy() }
}

const ceph = async (d: Paths, ...args: string[]): Promise<string> =>
  (await run('ceph', ['-c', d.conf, '--connect-timeout', '10', ...args])).stdout
const rgwAdmin = async (d: Paths, ...args: string[]): Promise<string> =>
  (await run('radosgw-admin', ['-c', d.conf, '-n', RGW_NAME, '--admin-socket=', '--log-file=/dev/null', ...args])).stdout

// --- processes ---------------------------------------------------------------------------------

// Daemons are found by executable and config path in /proc, not by pid file: a lab folder deleted
// under running daemons must not leave them unfindable (and their ports taken).
function pidOf(d: Paths, _name: string, exe: string): number | undefined {
  return findPid(exe, d.conf)
}

/** The live process running `exe` whose command line mentions `marker` (zombies, which PID 1 here never reaps, have no exe). */
export function findPid(exe: string, marker: string): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      if (basename(readlinkSync(`/proc/${entry}/exe`)) !== exe) continue
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ').includes(marker)) return Number(entry)
    } catch { /* gone, or not ours to read */ }
  }
  return undefined
}

const alive = (d: Paths, name: string, exe: string): boolean => pidOf(d, name, exe) !== undefined

async function kill(d: Paths, name: string, exe: string): Promise<void> {
  const pid = pidOf(d, name, exe)
  if (pid === undefined) return
  process.kill(pid, 'SIGTERM')
  const gone = async (): Promise<boolean> => pidOf(d, name, exe) === undefined
  try { await waitFor(`${name} to exit`, 5000, gone) } catch { process.kill(pid, 'SIGKILL'); await waitFor(`${name} to die`, 5000, gone) }
  rmSync(join(d.run, `${name}.pid`), { force: true })
}

export async function waitFor(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) {
    if (await check().catch(() => false)) return
    await new Promise(r => setTimeout(r, 50))
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
}

/** Run fn holding a lock folder (two test files bringing the same part up at once). A dead holder's lock is taken over. */
export async function withLock<T>(lock: string, fn: () => Promise<T>): Promise<T> {
  mkdirSync(dirname(lock), { recursive: true })
  await waitFor(`the lock ${lock}`, 60_000, async () => {
    try { mkdirSync(lock) } catch {
      const holder = Number(readFileSync(join(lock, 'pid'), 'utf8').trim() || 'NaN')
      if (Number.isInteger(holder) && !existsSync(`/proc/${holder}`)) rmSync(lock, { recursive: true, force: true })
      return false
    }
    writeFileSync(join(lock, 'pid'), `${process.pid}\n`)
    return true
  })
  try { return await fn() } finally { rmSync(lock, { recursive: true, force: true }) }
}

/** Link the hook scripts into $labDir/hooks/ (symlinks, so each hook finds this repo from its own path). */
export function installHooks(labDir: string, names: readonly string[]): void {
  const dir = join(resolve(labDir), 'hooks')
  mkdirSync(dir, { recursive: true })
  for (const h of names) {
    const dest = join(dir, h)
    rmSync(dest, { force: true })
    symlinkSync(join(here, 'hooks', h), dest)
  }
}

// --- CLI ---------------------------------------------------------------------------------------

const actions: Record<string, (labDir: string) => Promise<void>> = { up, down, wipe, stop, start }
if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [cmd, dir] = process.argv.slice(2)
  const action = cmd === undefined ? undefined : actions[cmd]
  if (action === undefined) {
    console.error('usage: node --import tsx test/lab/s3.ts up|down|wipe|stop|start [labDir]')
    process.exitCode = 2
  } else {
    action(dir ?? defaultLabDir()).catch((e: unknown) => { console.error(e); process.exitCode = 1 })
  }
}
