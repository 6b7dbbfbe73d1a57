import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdirSync, writeFileSync } from 'node:fs'
import { tempDir } from './tmp.ts'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { findEnvironment, loadConfig } from '../lib/config.ts'
import { DrError } from '../lib/errors.ts'
import { redact } from '../lib/output.ts'

/** A small homelab repo: top-level tfvars, two environments with s3 backends. */
function homelab(files: Record<string, string>): string {
  const dir = tempDir('hdr-cfg-')
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true })
    writeFileSync(join(dir, name), text)
  }
  return dir
}

const backend = (env: string) => `terraform {
  backend "s3" {
    bucket = "tfstate"
    key    = "${env}/terraform.tfstate"
    region = "us-east-1"
    endpoints = { s3 = "http://10.0.0.20:9000" }
    use_path_style = true
    use_lockfile   = true
  }
}
resource "terraform_data" "x" {}
`

const TFVARS = `# homelab
proxmox_nodes = {
  pve = { host = "192.168.1.10", port = 22, user = "root" }
}
backup_storage = "nas-backups"
minio_ctid          = 120
minio_ip            = "10.0.0.20"
minio_root_user     = "admin"
minio_root_password = "s3cr3t-Password!"
minio_buckets       = ["tfstate", "backups"]
monitoring_vmid = 200
monitoring_ip   = "10.0.0.30"
`

async function configError(dir: string): Promise<DrError> {
  try {
    await loadConfig(dir)
  } catch (e) {
    assert.instance(e, DrError)
    return e as DrError
  }
  throw new Error('expected a config error')
}

test('EF-005 reads nodes, storage, MinIO, monitoring and every environment backend from tfvars', async () => {
  const dir = homelab({ 'terraform.tfvars': TFVARS, 'environments/prod/main.tf': backend('prod'), 'environments/lab/main.tf': backend('lab'), 'environments/lab/terraform.tfvars': 'vm_count = 2\n' })
  const cfg = await loadConfig(dir)
  assert.equal(cfg.nodes, [{ name: 'pve', host: '192.168.1.10', port: 22, user: 'root' }])
  assert.is(cfg.backupStorage, 'nas-backups')
  assert.equal(cfg.minio, { ctid: 120, ip: '10.0.0.20', port: 9000, consolePort: 9001, accessKey: 'admin', secretKey: 's3cr3t-Password!', buckets: ['tfstate', 'backups'], endpoint: 'http://10.0.0.20:9000' })
  assert.equal(cfg.monitoring, { vmid: 200, ip: '10.0.0.30', prometheusPort: 9090, grafanaPort: 3000, alertmanagerPort: 9093 })
  assert.equal(cfg.environments.map((e) => [e.name, e.bucket, e.key, e.endpoint]), [
    ['lab', 'tfstate', 'lab/terraform.tfstate', 'http://10.0.0.20:9000'],
    ['prod', 'tfstate', 'prod/terraform.tfstate', 'http://10.0.0.20:9000'],
  ])
  assert.equal(cfg.files, ['terraform.tfvars', 'environments/lab/terraform.tfvars'])
})

test('the secret from tfvars is redacted from anything printed', async () => {
  const dir = homelab({ 'terraform.tfvars': TFVARS, 'environments/prod/main.tf': backend('prod') })
  await loadConfig(dir)
  assert.is(redact('auth failed for admin:s3cr3t-Password!'), 'auth failed for admin:***')
})

test('a broken tfvars is rejected with file, line and column (exit 4)', async () => {
  const dir = homelab({ 'terraform.tfvars': 'minio_ip = "10.0.0.20"\nminio_port = = 9000\n', 'environments/prod/main.tf': backend('prod') })
  const e = await configError(dir)
  assert.is(e.exitCode, 4)
  assert.is(e.message, 'Cannot parse terraform.tfvars:2:14: Invalid expression; Expected the start of an expression, but found an invalid expression token.')
})

test('a broken .tfvars.json is rejected naming the file', async () => {
  const dir = homelab({ 'environments/prod/main.tf': backend('prod'), 'environments/prod/terraform.tfvars.json': '{"a": ' })
  const e = await configError(dir)
  assert.match(e.message, /^Cannot parse environments\/prod\/terraform\.tfvars\.json: /)
})

test('a missing value names the key and the files searched', async () => {
  const dir = homelab({ 'terraform.tfvars': 'backup_storage = "local"\n', 'environments/prod/main.tf': backend('prod') })
  const e = await configError(dir)
  assert.is(e.message, "Missing the Proxmox node address (proxmox_nodes, proxmox_host or proxmox_api_url): variable 'proxmox_nodes' is not set (searched terraform.tfvars).")
})

test('an invalid value names the key, the file and what was expected', async () => {
  const dir = homelab({ 'terraform.tfvars': TFVARS.replace('minio_ctid          = 120', 'minio_ctid = "12x"'), 'environments/prod/main.tf': backend('prod') })
  const e = await configError(dir)
  assert.is(e.message, `Invalid 'minio_ctid' in terraform.tfvars: expected a whole number from 100 to 999999999, got "12x".`)
})

test('a node host that would inject into ssh is refused at load time', async () => {
  const dir = homelab({ 'terraform.tfvars': TFVARS.replace('"192.168.1.10"', '"-oProxyCommand=touch /tmp/x"'), 'environments/prod/main.tf': backend('prod') })
  const e = await configError(dir)
  assert.is(e.message, `Invalid 'proxmox_nodes' in terraform.tfvars: node 'pve' needs host = "<ip or name>".`)
})

test('the single-node layout: host from pm_api_url, defaults for port and user', async () => {
  const dir = homelab({ 'terraform.tfvars': 'pm_api_url = "https://192.168.1.5:8006/api2/json"\nproxmox_node = "pve2"\n', 'environments/prod/main.tf': backend('prod') })
  const cfg = await loadConfig(dir)
  assert.equal(cfg.nodes, [{ name: 'pve2', host: '192.168.1.5', port: 22, user: 'root' }])
  assert.is(cfg.minio, undefined)
})

test('HDR_VARS_MAP reads a homelab own variable names; HDR_<KEY> in .env overrides', async () => {
  const dir = homelab({
    'terraform.tfvars': TFVARS.replace('minio_ip            = "10.0.0.20"', 'storage_ip = "10.0.0.21"'),
    'environments/prod/main.tf': backend('prod'),
    '.env': 'HDR_VARS_MAP=minio_ip=storage_ip\nHDR_MONITORING_IP=10.0.0.99\n',
  })
  try {
    const cfg = await loadConfig(dir)
    assert.is(cfg.minio?.ip, '10.0.0.21')
    assert.is(cfg.monitoring?.ip, '10.0.0.99')
  } finally {
    delete process.env.HDR_VARS_MAP
    delete process.env.HDR_MONITORING_IP
  }
})

test('environment names are validated and unknown ones listed', async () => {
  const dir = homelab({ 'terraform.tfvars': TFVARS, 'environments/prod/main.tf': backend('prod') })
  const cfg = await loadConfig(dir)
  assert.is(findEnvironment(cfg, 'prod').key, 'prod/terraform.tfstate')
  assert.throws(() => findEnvironment(cfg, 'staging'), (e: Error) => e.message.startsWith("Unknown environment 'staging'. Known: prod"))
  assert.throws(() => findEnvironment(cfg, '../etc'), (e: Error) => e.message === 'Invalid environment name "../etc": use lower-case letters, digits, - and _.')
})

test.run()
