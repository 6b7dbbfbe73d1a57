// lib/minio.ts, the parts that are pure functions of the configuration: which buckets and environments
// MinIO serves, the container's parameters (Terraform first, then tfvars, then the backup, then
// defaults), the pct create argv, the local copy that --push-state would upload.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig, requireMinio } from '../lib/config.ts'
import { containerParams, environmentsOnMinio, localStateEnvironment, newestLocalState, pctCreateArgv, wantedBuckets } from '../lib/minio.ts'

const dirs: string[] = []
function homelab(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'hdr-minio-'))
  dirs.push(dir)
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true })
    writeFileSync(join(dir, name), text)
  }
  return dir
}
test.after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }) })

const s3Backend = (key: string, bucket = 'tfstate', endpoint = 'http://10.0.0.20:9000') =>
  `terraform {\n  backend "s3" {\n    bucket = "${bucket}"\n    key = "${key}"\n    endpoints = { s3 = "${endpoint}" }\n  }\n}\nresource "terraform_data" "x" {}\n`
const TFVARS = `proxmox_nodes = { pve = { host = "192.168.1.10" } }
minio_ctid = 120
minio_ip = "10.0.0.20"
minio_root_user = "admin"
minio_root_password = "s3cr3t-Password!"
minio_buckets = ["tfstate", "backups"]
guest_storage = "local-zfs"
`

test('wanted buckets: minio_buckets and every backend on this MinIO; another endpoint is not ours', async () => {
  const dir = homelab({
    'terraform.tfvars': TFVARS,
    'environments/prod/main.tf': s3Backend('prod/terraform.tfstate'),
    'environments/lab/main.tf': s3Backend('lab/terraform.tfstate', 'lab-states'),
    'environments/aws/main.tf': s3Backend('aws/terraform.tfstate', 'elsewhere', 'https://s3.amazonaws.com'),
  })
  const cfg = await loadConfig(dir)
  const minio = requireMinio(cfg)
  assert.equal(environmentsOnMinio(cfg, minio).map((e) => e.name), ['lab', 'prod'])
  assert.equal(wantedBuckets(cfg, minio), [
    { name: 'tfstate', why: ['minio_buckets', 'backend of prod'] },
    { name: 'backups', why: ['minio_buckets'] },
    { name: 'lab-states', why: ['backend of lab'] },
  ])
})

test('CT parameters from the minio environment\'s proxmox_lxc (var references resolved), the argv quoted as pct wants it', async () => {
  const dir = homelab({
    'terraform.tfvars': TFVARS + 'minio_cores = 4\n',
    'environments/minio/main.tf': s3Backend('minio/terraform.tfstate') + `
resource "proxmox_lxc" "minio" {
  vmid     = var.minio_ctid
  hostname = "s3-box"
  cores    = 1
  memory   = 4096
  rootfs {
    storage = "local-lvm"
    size    = "32G"
  }
  network {
    name   = "eth0"
    bridge = "vmbr1"
    ip     = "10.0.0.20/24"
    gw     = "10.0.0.1"
  }
}
`,
  })
  const cfg = await loadConfig(dir)
  const p = await containerParams(cfg, requireMinio(cfg), undefined)
  assert.equal({ ...p, sources: undefined }, { ctid: 120, hostname: 's3-box', ip: '10.0.0.20', cidr: 24, gateway: '10.0.0.1', bridge: 'vmbr1', cores: 1, memory: 4096, swap: 512, rootfsStorage: 'local-lvm', rootfsGb: 32, unprivileged: true, sources: undefined })
  assert.ok(p.sources.includes('environments/minio/main.tf'), p.sources.join(', '))
  assert.equal(pctCreateArgv(p, 'local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst'), [
    'pct', 'create', '120', 'local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst', '--hostname', 's3-box',
    '--net0', 'name=eth0,bridge=vmbr1,ip=10.0.0.20/24,gw=10.0.0.1', '--cores', '1', '--memory', '4096', '--swap', '512',
    '--rootfs', 'local-lvm:32', '--unprivileged', '1', '--onboot', '1',
  ])
})

test('CT parameters: tfvars before the backup, the backup before defaults', async () => {
  const dir = homelab({ 'terraform.tfvars': TFVARS + 'minio_memory = 3072\nminio_gateway = "10.0.0.254"\n', 'environments/prod/main.tf': s3Backend('prod/terraform.tfstate') })
  const cfg = await loadConfig(dir)
  const backup = { hostname: 'minio-old', cores: '2', memory: '1024', net0: 'name=eth0,bridge=vmbr0,gw=10.0.0.1,hwaddr=BC:24:11:00:01:20,ip=10.0.0.20/16,type=veth', rootfs: 'local-lvm:vm-120-disk-0,size=4G', unprivileged: '1' }
  const p = await containerParams(cfg, requireMinio(cfg), backup)
  assert.equal([p.hostname, p.cidr, p.gateway, p.cores, p.memory, p.rootfsStorage, p.rootfsGb], ['minio-old', 16, '10.0.0.254', 2, 3072, 'local-lvm', 4])
  const none = await containerParams(cfg, requireMinio(cfg), undefined)
  assert.equal([none.hostname, none.cidr, none.cores, none.rootfsStorage, none.rootfsGb, none.bridge], ['minio', 24, 2, 'local-zfs', 8, 'vmbr0'])
  assert.ok(none.sources.includes('defaults'))
})

test('a hostile value from the tfvars never reaches the node as a parameter', async () => {
  const dir = homelab({ 'terraform.tfvars': TFVARS + 'minio_hostname = "x; rm -rf /"\n', 'environments/prod/main.tf': s3Backend('prod/terraform.tfstate') })
  const cfg = await loadConfig(dir)
  try {
    await containerParams(cfg, requireMinio(cfg), undefined)
    assert.unreachable('should refuse')
  } catch (e) {
    assert.match((e as Error).message, /^Invalid hostname "x; rm -rf \/" for the MinIO CT\.$/)
  }
})

test('the minio environment with a local state can be applied instead; with an s3 backend it cannot', async () => {
  const dir = homelab({ 'terraform.tfvars': TFVARS, 'environments/minio/main.tf': 'resource "terraform_data" "ct" {}\n', 'environments/minio/terraform.tfstate': '{}' })
  const cfg = await loadConfig(dir)
  assert.is(localStateEnvironment(cfg)?.env.name, 'minio')
  const s3 = homelab({ 'terraform.tfvars': TFVARS, 'environments/minio/main.tf': s3Backend('minio/terraform.tfstate') })
  assert.is(localStateEnvironment(await loadConfig(s3)), undefined)
})

test('--state-from: the highest serial of DIR/<env>/*.tfstate and DIR/<env>.tfstate; invalid files skipped', async () => {
  const st = (serial: number) => JSON.stringify({ version: 4, terraform_version: '1.11.4', serial, lineage: 'l-1', outputs: {}, resources: [] })
  const from = homelab({ 'prod/3.tfstate': st(3), 'prod/9.tfstate': '{"broken"', 'prod.tfstate': st(5), 'lab.tfstate': st(1) })
  const dir = homelab({ 'terraform.tfvars': TFVARS, 'environments/prod/main.tf': s3Backend('prod/terraform.tfstate') })
  const env = (await loadConfig(dir)).environments[0]!
  const got = newestLocalState(env, from)
  assert.is(got?.state.serial, 5)
  assert.is(got?.file, join(from, 'prod.tfstate'))
})

test.run()
