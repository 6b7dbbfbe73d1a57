import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { tempDir } from './tmp.ts'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { dotenvAllowed, findEnvironment, findNode, loadConfig, requireMinio, requireMinioCtid, stateStore, type Config } from '../lib/config.ts'
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
  // a MinIO setting stops the tasks that use MinIO, not restore:vm
  const cfg = await loadConfig(dir)
  assert.is(cfg.nodes.length, 1)
  const e = await configErrorOf(async () => requireMinio(cfg))
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

// ---- the shapes of real homelab repos (test/fixtures/<shape>/, issue 11) ----

const FIX = fileURLToPath(new URL('./fixtures/', import.meta.url))
const envs = (cfg: Config) => cfg.environments.map((e) => ({ name: e.name, bucket: e.bucket, key: e.key, endpoint: e.endpoint, prefix: e.workspaceKeyPrefix, aws: e.aws }))
async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const old = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]))
  Object.assign(process.env, vars)
  try {
    return await fn()
  } finally {
    for (const [k, v] of Object.entries(old)) if (v === undefined) delete process.env[k]
    else process.env[k] = v
  }
}

test('EF-005 shape 1, no terraform.tfvars: variables.tf defaults, *.auto.tfvars over them, HDR_VAR_FILES, TF_VAR_, HDR_*', async () => {
  const cfg = await withEnv({ HDR_VAR_FILES: 'secrets.tfvars', TF_VAR_monitoring_vmid: '201' }, () => loadConfig(join(FIX, 'no-tfvars')))
  assert.equal(cfg.nodes, [{ name: 'pve', host: '192.168.1.10', port: 22, user: 'root' }])
  assert.is(cfg.nodesFrom, 'provider "proxmox" in versions.tf:23')
  assert.is(cfg.backupStorage, 'nas-backups') // homelab.auto.tfvars beats the default "local"
  assert.is(cfg.used.get('backup_storage'), 'homelab.auto.tfvars:2')
  assert.equal(cfg.monitoring, { vmid: 201, ip: '192.168.1.31', prometheusPort: 9090, grafanaPort: 3000, alertmanagerPort: 9093 }) // TF_VAR_ beats the default
  assert.is(cfg.used.get('monitoring_vmid'), 'TF_VAR_monitoring_vmid (environment)')
  assert.equal(cfg.minio, { ctid: undefined, ip: '192.168.1.50', port: 9000, consolePort: 9001, accessKey: 'terraform', secretKey: 'fixture-secret-123', buckets: ['tfstate'], endpoint: 'http://192.168.1.50:9000' })
  assert.is(cfg.used.get('minio_root_password'), 'secrets.tfvars:3')
  assert.equal(cfg.files, ['homelab.auto.tfvars', 'secrets.tfvars'])
  assert.equal(envs(cfg), [{ name: 'no-tfvars', bucket: 'homelab-tf-state', key: 'homelab-infra.tfstate', endpoint: 'http://192.168.1.50:9000', prefix: 'env:', aws: false }])
  // HDR_* overrides work with no tfvars at all
  const over = await withEnv({ HDR_BACKUP_STORAGE: 'pbs', HDR_MINIO_ROOT_USER: 'u', HDR_MINIO_ROOT_PASSWORD: 'p-secret' }, () => loadConfig(join(FIX, 'no-tfvars')))
  assert.is(over.backupStorage, 'pbs')
  assert.is(over.used.get('backup_storage'), 'HDR_BACKUP_STORAGE')
})

test('EF-005 shape 1: an empty default is "not set", and the error says what to add to .env, to the tasks that need it', async () => {
  // The MinIO credentials are in secrets.tfvars, which terraform reads only with -var-file: the guest
  // tasks still load (restore:vm, verify:backups touch no S3); the MinIO ones say what to add.
  const cfg = await loadConfig(join(FIX, 'no-tfvars'))
  assert.equal(cfg.nodes, [{ name: 'pve', host: '192.168.1.10', port: 22, user: 'root' }])
  assert.is(cfg.backupStorage, 'nas-backups')
  assert.is(cfg.monitoring?.vmid, 200)
  assert.is(cfg.minio, undefined)
  const e = await configErrorOf(async () => requireMinio(cfg))
  assert.is(e.message, "Missing minio_root_user: variable 'minio_root_user' is not set (searched homelab.auto.tfvars, variables.tf).")
  assert.is(e.hint, 'Add to .env: HDR_MINIO_ROOT_USER=<value>  (or map your own variable with HDR_VARS_MAP; docs/configuration.md).')
  const f = await withEnv({ HDR_VAR_FILES: 'nope.tfvars' }, () => configErrorOf(() => loadConfig(join(FIX, 'no-tfvars'))))
  assert.is(f.message, `HDR_VAR_FILES names nope.tfvars, which does not exist (looked for ${join(FIX, 'no-tfvars', 'nope.tfvars')}).`)
})

test('EF-005 shape 2: the nodes from a bpg provider block (ssh node blocks, var. resolved, realm dropped)', async () => {
  const cfg = await loadConfig(join(FIX, 'provider-node'))
  assert.equal(cfg.nodes, [
    { name: 'pve01', host: '192.168.10.11', port: 22, user: 'terraform' },
    { name: 'pve02', host: '192.168.10.12', port: 2222, user: 'terraform' },
  ])
  assert.is(cfg.nodesFrom, 'provider "proxmox" in terraform/proxmox/provider.tf:10')
  assert.equal(cfg.environments.map((e) => e.name), ['proxmox', 'telmate'])
})

test('EF-005 shape 2: Telmate pm_api_url through a local, the node name from target_node', async () => {
  const cfg = await loadConfig(join(FIX, 'provider-node', 'terraform', 'telmate'))
  assert.equal(cfg.nodes, [{ name: 'homeserver', host: '192.168.20.5', port: 22, user: 'root' }])
  assert.equal(cfg.environments.map((e) => [e.name, e.backend]), [['telmate', undefined]])
})

test('EF-005 shape 3: root modules one and two levels down are environments; modules, .terraform and hidden folders are not', async () => {
  const cfg = await loadConfig(join(FIX, 'nested-roots'))
  assert.equal(envs(cfg), [
    { name: 'dns', bucket: undefined, key: undefined, endpoint: undefined, prefix: 'env:', aws: false },
    { name: 'k3s', bucket: 'terraform-state', key: 'k3s/terraform.state', endpoint: 'https://minio-api.lab.example', prefix: 'env:', aws: false },
  ])
  assert.is(cfg.environments[1]!.dir, join(FIX, 'nested-roots', 'proxmox', 'k3s'))
  // --tf-dir pointing at one environment: that folder is the one environment
  // (lenient, as restore:state loads: this folder names no node, and restore:state needs none)
  const one = await loadConfig(join(FIX, 'nested-roots', 'proxmox', 'k3s'), { lenient: true })
  assert.equal(one.environments.map((e) => e.name), ['k3s'])
  assert.equal(one.problems.map((p) => [p.setting, p.error.message]), [['nodes', "Missing the Proxmox node address (proxmox_nodes, proxmox_host or proxmox_api_url): variable 'proxmox_nodes' is not set (searched no variable file: none found)."]])
  assert.is(one.problems[0]!.error.hint, 'Add to .env: HDR_PROXMOX_NODES=pve=root@<node address>:22  (or map your own variable with HDR_VARS_MAP; docs/configuration.md).')
  assert.throws(() => findNode(one, undefined), (e: Error) => e.message.startsWith('Missing the Proxmox node address'))
})

test('EF-005 shape 4: partial backend configuration from backend.hcl, *.tfbackend and terraform init\'s record; workspaces', async () => {
  const cfg = await loadConfig(join(FIX, 'partial-backend'))
  assert.equal(envs(cfg).filter((e) => e.name !== 'broken'), [
    { name: 'dev', bucket: 'tofu-state', key: 'dev/terraform.tfstate', endpoint: 'http://10.20.0.6:9000', prefix: 'env:', aws: false },
    { name: 'prod', bucket: 'tofu-state', key: 'prod/terraform.tfstate', endpoint: 'http://10.20.0.5:9000', prefix: 'workspaces', aws: false },
    { name: 'split-dev', bucket: 'split-state', key: 'split/dev.tfstate', endpoint: 'http://10.20.0.7:9000', prefix: 'env:', aws: false },
    { name: 'split-prod', bucket: 'split-state', key: 'split/prod.tfstate', endpoint: 'http://10.20.0.7:9000', prefix: 'env:', aws: false },
  ])
  const prod = findEnvironment(cfg, 'prod')
  assert.equal([prod.sources.bucket, prod.sources.endpoint, prod.sources.workspace_key_prefix], ['environments/prod/backend.hcl:1', 'environments/prod/backend.hcl:5', 'environments/prod/backend.hcl:3'])
  assert.equal(prod.backendConfigFiles, [join(FIX, 'partial-backend', 'environments', 'prod', 'backend.hcl')])
  assert.equal([prod.workspace, prod.workspaces], ['staging', ['staging']])
  const dev = findEnvironment(cfg, 'dev')
  assert.equal([dev.sources.bucket, dev.sources.key, dev.sources.endpoint], ['environments/dev/main.tf:3', 'environments/dev/.terraform/terraform.tfstate (terraform init)', 'environments/dev/.terraform/terraform.tfstate (terraform init)'])
  assert.equal(dev.workspaces, ['blue'])
  assert.equal(findEnvironment(cfg, 'split-prod').backendConfigFiles, [join(FIX, 'partial-backend', 'split', 'prod.tfbackend')])
})

test('EF-005 shape 4: a var. in a backend block is refused with Terraform\'s reason, when that environment is used', async () => {
  const cfg = await loadConfig(join(FIX, 'partial-backend'))
  const e = await configErrorOf(async () => stateStore(cfg, findEnvironment(cfg, 'broken')))
  assert.is(e.message, "The backend block of 'broken' (environments/broken/main.tf:7) sets bucket from an expression: Variables not allowed — Variables may not be used here. (terraform init refuses it too.)")
  assert.is(e.hint, 'Write the value in a file, e.g. environments/broken/backend.hcl with bucket = "…", and run terraform init -backend-config=backend.hcl (homelab-dr reads that file).')
  assert.is(e.exitCode, 4)
})

test('EF-005 shape 4: a supplied endpoint is never replaced by the MinIO default', async () => {
  const dir = homelab({
    'terraform.tfvars': TFVARS,
    'environments/prod/main.tf': 'terraform {\n  backend "s3" {}\n}\n',
    'environments/prod/backend.hcl': 'bucket = "tfstate"\nkey = "prod.tfstate"\nendpoint = "http://10.0.0.77:9000"\n',
  })
  try {
    const cfg = await loadConfig(dir)
    assert.is(stateStore(cfg, findEnvironment(cfg, 'prod')).endpoint, 'http://10.0.0.77:9000')
    assert.is(cfg.minio?.endpoint, 'http://10.0.0.77:9000')
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('EF-005 shape 4: a backend with no bucket names every place searched', async () => {
  const dir = homelab({ 'terraform.tfvars': TFVARS, 'environments/prod/main.tf': 'terraform {\n  backend "s3" {\n    key = "k"\n  }\n}\n' })
  try {
    const cfg = await loadConfig(dir)
    const e = await configErrorOf(async () => stateStore(cfg, findEnvironment(cfg, 'prod')))
    assert.is(e.message, "The s3 backend of 'prod' has no bucket (searched environments/prod/main.tf:2, environments/prod/.terraform/terraform.tfstate).")
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('EF-005 shape 5: each environment its own endpoint; a plain AWS backend is AWS, never MinIO', async () => {
  const cfg = await withEnv({ AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '' }, () => loadConfig(join(FIX, 'endpoints')))
  assert.equal(envs(cfg), [
    { name: 'cloud', bucket: 'acme-terraform-state', key: 'cloud/terraform.tfstate', endpoint: undefined, prefix: 'env:', aws: true },
    { name: 'right', bucket: 'tfstate', key: 'endpoints-fixture/right.tfstate', endpoint: 'http://127.0.0.4:9000', prefix: 'env:', aws: false },
    { name: 'wrong', bucket: 'tfstate', key: 'endpoints-fixture/wrong.tfstate', endpoint: 'http://127.0.0.9:9000', prefix: 'env:', aws: false },
  ])
  const right = stateStore(cfg, findEnvironment(cfg, 'right'))
  assert.equal([right.endpoint, right.accessKey, right.credentialsFrom], ['http://127.0.0.4:9000', 'hdrlabaccess', 'minio_root_user / minio_root_password (terraform.tfvars:3)'])
  assert.is(stateStore(cfg, findEnvironment(cfg, 'wrong')).endpoint, 'http://127.0.0.9:9000')
  const e = await withEnv({ AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '' }, () => configErrorOf(async () => stateStore(cfg, findEnvironment(cfg, 'cloud'))))
  assert.is(e.message, "No S3 credentials for 'cloud' (AWS S3 (eu-central-1)): AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not set.")
  assert.is(e.hint, 'Add to .env: AWS_ACCESS_KEY_ID=<access key> and AWS_SECRET_ACCESS_KEY=<secret key>')
  const aws = await withEnv({ AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE', AWS_SECRET_ACCESS_KEY: 'aws-secret-example' }, async () => stateStore(cfg, findEnvironment(cfg, 'cloud')))
  assert.equal([aws.endpoint, aws.label, aws.aws], ['https://s3.eu-central-1.amazonaws.com', 'AWS S3 (eu-central-1)', true])
})

test('EF-005 shape 6: MinIO on a NAS: no minio_ctid needed, except by the container rebuild', async () => {
  const cfg = await loadConfig(join(FIX, 'minio-nas'))
  assert.equal(cfg.nodes, [{ name: 'pve', host: 'pve.lan', port: 22, user: 'root' }])
  assert.equal([cfg.minio?.ip, cfg.minio?.ctid, cfg.minio?.endpoint], ['nas.lan', undefined, 'http://nas.lan:9000'])
  assert.equal(envs(cfg), [{ name: 'minio-nas', bucket: 'terraform', key: 'homelab/terraform.tfstate', endpoint: 'http://nas.lan:9000', prefix: 'env:', aws: false }])
  const e = await configErrorOf(async () => requireMinioCtid(cfg))
  assert.is(e.message, 'No MinIO container: minio_ctid is not set, so MinIO is not a Proxmox container homelab-dr can rebuild.')
  assert.is(e.hint, 'If MinIO runs in a CT, add to .env: HDR_MINIO_CTID=<its CT id>')
})

test('EF-005 shape 7: proxmox_nodes as a set of names (addresses from the provider) or a list of objects; hdr_ names win', async () => {
  const sets = await loadConfig(join(FIX, 'name-collisions', 'sets'))
  assert.equal(sets.nodes, [{ name: 'pve1', host: '10.0.0.11', port: 22, user: 'root' }, { name: 'pve2', host: '10.0.0.12', port: 22, user: 'root' }])
  assert.is(sets.minio?.ip, '10.0.0.20') // hdr_minio_ip, not the operator's own minio_ip
  assert.is(sets.used.get('minio_ip'), 'main.tf:21')
  const objects = await loadConfig(join(FIX, 'name-collisions', 'objects'))
  assert.equal(objects.nodes, [{ name: 'pve-a', host: '10.1.0.11', port: 22, user: 'root' }, { name: 'pve-b', host: '10.1.0.12', port: 2222, user: 'root' }])
  const str = await withEnv({ HDR_PROXMOX_NODES: 'pve-a=admin@10.1.0.21:2201,pve-b=10.1.0.22' }, () => loadConfig(join(FIX, 'name-collisions', 'objects')))
  assert.equal(str.nodes, [{ name: 'pve-a', host: '10.1.0.21', port: 2201, user: 'admin' }, { name: 'pve-b', host: '10.1.0.22', port: 22, user: 'root' }])
})

test('EF-005 shape 7: names without an address and no provider say the .env line to add', async () => {
  const dir = homelab({ 'terraform.tfvars': 'proxmox_nodes = ["pve1", "pve2"]\n' })
  try {
    const e = await configErrorOf(() => loadConfig(dir))
    assert.is(e.message, "Node 'pve1' in proxmox_nodes (terraform.tfvars) has no address, and no provider block names one.")
    assert.is(e.hint, 'Add to .env: HDR_PROXMOX_NODES=pve1=root@<address>:22,pve2=root@<address>:22')
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('issue 12.5: .env loads only homelab-dr\'s keys; BASH_ENV, NODE_OPTIONS, PATH, ZX_*, HDR_SSH_CONFIG are refused', async () => {
  const dir = homelab({
    'terraform.tfvars': TFVARS,
    '.env': 'BASH_ENV=/tmp/evil.sh\nNODE_OPTIONS=--require /tmp/evil.js\nPATH=/tmp/evil\nZX_SHELL=/tmp/evil\nHDR_SSH_CONFIG=/tmp/evil_ssh_config\nAWS_CONFIG_FILE=/tmp/evil\nHDR_GUEST_STORAGE=fast\nTF_VAR_extra=1\n',
  })
  const path = process.env.PATH
  try {
    const cfg = await loadConfig(dir)
    assert.is(process.env.BASH_ENV, undefined)
    assert.is(process.env.NODE_OPTIONS, undefined)
    assert.is(process.env.ZX_SHELL, undefined)
    assert.is(process.env.HDR_SSH_CONFIG, undefined)
    assert.is(process.env.AWS_CONFIG_FILE, undefined)
    assert.is(process.env.PATH, path)
    assert.is(cfg.guestStorage, 'fast')
    assert.equal(cfg.dotenv, [{ file: join(dir, '.env'), loaded: ['HDR_GUEST_STORAGE', 'TF_VAR_extra'], refused: ['BASH_ENV', 'NODE_OPTIONS', 'PATH', 'ZX_SHELL', 'HDR_SSH_CONFIG', 'AWS_CONFIG_FILE'] }])
    assert.ok(dotenvAllowed('AWS_SECRET_ACCESS_KEY') && dotenvAllowed('HDR_VARS_MAP') && !dotenvAllowed('LD_PRELOAD'))
  } finally {
    delete process.env.HDR_GUEST_STORAGE
    delete process.env.TF_VAR_extra
    rmSync(dir, { recursive: true, force: true })
  }
})

test('the existing fixture (test/fixtures/homelab) still loads whole', async () => {
  const cfg = await loadConfig(join(FIX, 'homelab'))
  assert.equal(cfg.nodes, [{ name: 'pve', host: '127.0.0.2', port: 2222, user: 'root' }])
  assert.is(cfg.minio?.ctid, 120)
  assert.equal(envs(cfg).map((e) => [e.name, e.endpoint, e.key]), [
    ['lab', 'http://127.0.0.4:9000', 'lab/terraform.tfstate'], ['minio', 'http://127.0.0.4:9000', 'minio/terraform.tfstate'],
    ['monitoring', 'http://127.0.0.4:9000', 'monitoring/terraform.tfstate'], ['prod', 'http://127.0.0.4:9000', 'prod/terraform.tfstate'],
  ])
})

async function configErrorOf(fn: () => Promise<unknown>): Promise<DrError> {
  try {
    await fn()
  } catch (e) {
    assert.instance(e, DrError)
    return e as DrError
  }
  throw new Error('expected a config error')
}

test.run()
