// The fixture node "pve": guests, disks, storages, backup job and real backup archives made by the
// simulator's own vzdump at fixed dates. Built once per content hash into $labDir/cache/ and
// copied into $labDir/pve by reset().
import fs from 'node:fs'
import path from 'node:path'
import { createHash } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

export const SIM_DIR = fileURLToPath(new URL('./pve-sim/', import.meta.url))
export const SIM_BIN = path.join(SIM_DIR, 'bin')
const MiB = 1048576
const GiB = 1024 * MiB

/** Guests of the fixture, as tests may want to name them. */
export const FIXTURE = {
  web01: { vmid: 101, type: 'qemu', ip: '10.251.0.101', running: true },
  db01: { vmid: 102, type: 'qemu', ip: '10.251.0.102', running: false },
  dns01: { vmid: 110, type: 'lxc', ip: '10.251.0.110', running: true },
  minio: { vmid: 120, type: 'lxc', ip: '127.0.0.4', running: true },
  monitoring: { vmid: 200, type: 'qemu', ip: '127.0.0.5', running: true },
} as const

/** Backups of the fixture (file names in local's dump folder). */
export const BACKUPS = {
  web01: [
    'vzdump-qemu-101-2026_11_20-03_00_02.vma.lzo', // protected
    'vzdump-qemu-101-2026_11_23-03_00_02.vma.gz',
    'vzdump-qemu-101-2026_11_25-03_00_02.vma.zst', // notes "web01"
  ],
  dns01: ['vzdump-lxc-110-2026_11_23-03_00_02.tar.zst', 'vzdump-lxc-110-2026_11_25-03_00_02.tar.zst'],
  minio: ['vzdump-lxc-120-2026_11_25-03_00_02.tar.zst'],
  monitoring: ['vzdump-qemu-200-2026_11_25-03_00_02.vma.zst'],
} as const

/** A recognizable disk image: a text label in block 0 (a bootable sector 0), patterned clusters, a lone block, zeros. */
export function diskImage(label: string, sizeMiB: number): Buffer {
  const img = Buffer.alloc(sizeMiB * MiB)
  const seed = createHash('sha256').update(label).digest()
  for (let c = 0; c < (sizeMiB * 16); c += 5) {
    for (let o = 0; o < 65536; o += 32) seed.copy(img, c * 65536 + o)
    img.write(`cluster ${c} of ${label}`, c * 65536)
  }
  if (sizeMiB > 2) img.write(`lone block of ${label}`, 2 * MiB + 3 * 4096)
  img.write(`HDR-LAB disk ${label}\n`, 0)
  img[510] = 0x55 // the boot signature ending sector 0: the firmware boots this disk (pve-sim guest.mjs vmBoots)
  img[511] = 0xaa
  return img
}

function hashSources(): string {
  const h = createHash('sha1')
  const walk = (d: string) => {
    for (const n of fs.readdirSync(d).sort()) {
      const p = path.join(d, n)
      if (fs.statSync(p).isDirectory()) walk(p)
      else h.update(n).update(fs.readFileSync(p))
    }
  }
  walk(SIM_DIR)
  h.update(fs.readFileSync(fileURLToPath(import.meta.url)))
  return h.digest('hex').slice(0, 12)
}

const conf = (lines: string[]) => lines.join('\n') + '\n'

/** The programs a container template offers `pct exec` (Debian's standard template has them all). */
const TEMPLATE_PROGRAMS = ['bash', 'sh', 'cat', 'mkdir', 'chmod', 'chown', 'mv', 'rm', 'ln', 'id', 'cp', 'ls', 'curl', 'useradd', 'groupadd', 'grep', 'env', 'sleep', 'install', 'hostname']

/**
 * A root filesystem a chroot can run: this machine's own Debian binaries and their libraries (merged
 * /usr, as Debian 12), minimal account files, and the lab's systemctl (pve-sim/container/systemctl).
 */
export function containerRoot(root: string): void {
  for (const d of ['usr/bin', 'usr/sbin', 'usr/lib', 'usr/lib64', 'usr/local/bin', 'etc/systemd/system', 'run', 'tmp', 'root', 'var/lib']) fs.mkdirSync(path.join(root, d), { recursive: true })
  for (const d of ['bin', 'sbin', 'lib', 'lib64']) fs.symlinkSync(`usr/${d}`, path.join(root, d))
  const copy = (file: string) => {
    const dest = path.join(root, file)
    if (fs.existsSync(dest)) return
    fs.mkdirSync(path.dirname(dest), { recursive: true })
    fs.copyFileSync(fs.realpathSync(file), dest)
    fs.chmodSync(dest, fs.statSync(fs.realpathSync(file)).mode & 0o7777)
  }
  for (const prog of TEMPLATE_PROGRAMS) {
    const which = spawnSync('sh', ['-c', 'command -v "$1"', 'sh', prog], { encoding: 'utf8' }).stdout.trim()
    if (!which.startsWith('/')) throw new Error(`seed: ${prog} is not installed here (tools/setup.sh)`)
    copy(which)
    const ldd = spawnSync('ldd', [which], { encoding: 'utf8' }).stdout
    for (const m of ldd.matchAll(/(\/\S+\.so[^\s]*)/g)) copy(m[1]!)
  }
  const w = (rel: string, text: string, mode = 0o644) => { fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true }); fs.writeFileSync(path.join(root, rel), text, { mode }) }
  w('etc/os-release', 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n')
  w('etc/hostname', 'localhost\n')
  w('etc/passwd', 'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n')
  w('etc/group', 'root:x:0:\nnogroup:x:65534:\n')
  w('etc/shadow', 'root:*:20000:0:99999:7:::\nnobody:*:20000:0:99999:7:::\n', 0o640)
  w('etc/gshadow', 'root:*::\nnogroup:*::\n', 0o640)
  w('etc/login.defs', 'USERGROUPS_ENAB yes\nSYS_UID_MIN 100\nSYS_UID_MAX 999\nSYS_GID_MIN 100\nSYS_GID_MAX 999\nUID_MIN 1000\nUID_MAX 60000\nGID_MIN 1000\nGID_MAX 60000\n')
  w('usr/sbin/nologin', '#!/bin/sh\necho "This account is currently not available."\nexit 1\n', 0o755)
  fs.copyFileSync(path.join(SIM_DIR, 'container', 'systemctl'), path.join(root, 'usr/bin/systemctl'))
  fs.chmodSync(path.join(root, 'usr/bin/systemctl'), 0o755)
}

/** The fixture MinIO CT's disk: MinIO installed and enabled as rebuild:minio installs it (lib/minio.ts). */
function minioInstalled(root: string): void {
  const w = (rel: string, text: string, mode = 0o644) => { fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true }); fs.writeFileSync(path.join(root, rel), text, { mode }) }
  w('usr/local/bin/minio', '#!/bin/sh\necho "minio (lab stand-in: the lab\'s S3 is Ceph RGW, docs/lab.md)"\n', 0o755)
  w('etc/default/minio', 'MINIO_VOLUMES="/var/lib/minio/data"\nMINIO_OPTS="--address :9000 --console-address :9001"\n', 0o600)
  w('etc/systemd/system/minio.service', '[Unit]\nDescription=MinIO\n[Service]\nEnvironmentFile=/etc/default/minio\nExecStart=/usr/local/bin/minio server $MINIO_OPTS $MINIO_VOLUMES\n[Install]\nWantedBy=multi-user.target\n')
  fs.mkdirSync(path.join(root, 'etc/systemd/system/multi-user.target.wants'), { recursive: true })
  fs.symlinkSync('/etc/systemd/system/minio.service', path.join(root, 'etc/systemd/system/multi-user.target.wants/minio.service'))
}

/** Build (once) the fixture's pve/ tree and return its path in the cache. */
export function ensureSeed(labDir: string): string {
  const cache = path.join(labDir, 'cache', `seed-${hashSources()}`)
  const ready = path.join(cache, 'pve')
  if (fs.existsSync(path.join(cache, 'done'))) return ready
  fs.rmSync(cache, { recursive: true, force: true })
  const pve = ready
  const w = (rel: string, data: string | Buffer) => {
    const p = path.join(pve, rel)
    fs.mkdirSync(path.dirname(p), { recursive: true })
    fs.writeFileSync(p, data)
  }
  // Storages: local (dir) holds backups; local-lvm (lvmthin) holds disks as files under images/
  w('storage.json', JSON.stringify({
    local: { type: 'dir', path: 'var/lib/vz', content: 'backup,iso,vztmpl,snippets', shared: 0, enabled: 1, active: 1, total: 100 * GiB, avail: 60 * GiB },
    'local-lvm': { type: 'lvmthin', path: 'images', content: 'images,rootdir', shared: 0, enabled: 1, active: 1, total: 200 * GiB, avail: 150 * GiB },
  }, null, 1) + '\n')
  w('binds.json', JSON.stringify({ '120': 's3', '200': 'monitoring' }) + '\n')
  w('jobs.json', JSON.stringify([{
    id: 'backup-daily', type: 'vzdump', schedule: '03:00', storage: 'local', all: 1, mode: 'snapshot',
    compress: 'zstd', enabled: 1, 'notes-template': '{{guestname}}', 'prune-backups': 'keep-last=3',
  }], null, 1) + '\n')
  const qemu = 'etc/pve/nodes/pve/qemu-server', lxc = 'etc/pve/nodes/pve/lxc'
  w(`${qemu}/101.conf`, conf([
    'agent: 1', 'boot: order=scsi0', 'cores: 2', 'ipconfig0: ip=10.251.0.101/24,gw=10.251.0.1', 'memory: 2048',
    'meta: creation-qemu=9.2.0,ctime=1762000000', 'name: web01', 'net0: virtio=BC:24:11:00:01:01,bridge=vmbr0,firewall=1',
    'onboot: 1', 'ostype: l26', 'scsi0: local-lvm:vm-101-disk-0,iothread=1,size=8M',
    'scsi1: local-lvm:vm-101-disk-1,backup=0,size=1M', 'scsihw: virtio-scsi-single',
    'smbios1: uuid=6f1e2c3a-0101-4a5b-9c1d-000000000101', 'tags: prod;web', 'vmgenid: 3a1f0000-0000-4000-8000-000000000101',
  ]))
  w(`${qemu}/102.conf`, conf([
    'agent: 1', 'boot: order=scsi0', 'cores: 2', 'ipconfig0: ip=10.251.0.102/24,gw=10.251.0.1', 'memory: 4096',
    'name: db01', 'net0: virtio=BC:24:11:00:01:02,bridge=vmbr0', 'ostype: l26',
    'scsi0: local-lvm:vm-102-disk-0,size=1M', 'scsihw: virtio-scsi-single',
  ]))
  w(`${qemu}/200.conf`, conf([
    '#hdr-bind: monitoring', 'agent: 1', 'boot: order=scsi0', 'cores: 2', 'ipconfig0: ip=127.0.0.5/8,gw=127.0.0.1',
    'memory: 4096', 'name: monitoring', 'net0: virtio=BC:24:11:00:02:00,bridge=vmbr0', 'ostype: l26',
    'scsi0: local-lvm:vm-200-disk-0,size=2M', 'scsihw: virtio-scsi-single',
  ]))
  w(`${lxc}/110.conf`, conf([
    'arch: amd64', 'cores: 1', 'features: nesting=1', 'hostname: dns01', 'memory: 512',
    'net0: name=eth0,bridge=vmbr0,gw=10.251.0.1,hwaddr=BC:24:11:00:01:10,ip=10.251.0.110/24,type=veth',
    'onboot: 1', 'ostype: debian', 'rootfs: local-lvm:vm-110-disk-0,size=1G', 'swap: 512', 'unprivileged: 1',
  ]))
  w(`${lxc}/120.conf`, conf([
    '#hdr-bind: s3', 'arch: amd64', 'cores: 2', 'hostname: minio', 'memory: 1024',
    'net0: name=eth0,bridge=vmbr0,gw=127.0.0.1,hwaddr=BC:24:11:00:01:20,ip=127.0.0.4/8,type=veth',
    'onboot: 1', 'ostype: debian', 'rootfs: local-lvm:vm-120-disk-0,size=4G', 'swap: 512', 'unprivileged: 1',
  ]))
  const rootfs = (vmid: number, host: string, tag: string) => {
    const d = `images/vm-${vmid}-disk-0`
    w(`${d}/etc/hostname`, `${host}\n`)
    w(`${d}/root/marker`, `${host} ${tag}\n`)
    w(`${d}/etc/os-release`, 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n')
  }
  // container template for `pct create` (the MinIO rebuild from zero): a small Debian-like root that
  // `pct exec` can really run commands in (chroot), see containerRoot()
  const tpl = path.join(cache, 'tpl')
  containerRoot(tpl)
  fs.mkdirSync(path.join(pve, 'var/lib/vz/template/cache'), { recursive: true })
  const t = spawnSync('tar', ['--zstd', '-cf', path.join(pve, 'var/lib/vz/template/cache/debian-12-standard_12.7-1_amd64.tar.zst'), '-C', tpl, '.'])
  if (t.status !== 0) throw new Error(`seed: tar failed: ${t.stderr}`)
  fs.rmSync(tpl, { recursive: true })
  fs.mkdirSync(path.join(pve, 'var/lib/vz/dump'), { recursive: true })
  for (const [vmid, running] of [[101, true], [102, false], [110, true], [120, true], [200, true]] as const) {
    w(`run/${vmid}.json`, JSON.stringify({ running, changed: 0, started: running ? Date.parse('2026-11-01T00:00:00Z') : 0 }))
  }
  w('images/vm-101-disk-1.raw', diskImage('web01 scsi1 (backup=0)', 1))
  w('images/vm-102-disk-0.raw', diskImage('db01 scsi0', 1))
  w('images/vm-200-disk-0.raw', diskImage('monitoring scsi0 2026-11-25', 2))

  // Backups, oldest first, made by the simulator's vzdump at fixed dates
  const vzdump = (when: string, args: string[]) => {
    const r = spawnSync(process.execPath, [path.join(SIM_BIN, 'vzdump'), ...args, '--storage', 'local', '--mode', 'snapshot'], {
      env: { ...process.env, HDR_LAB_DIR: cache, HDR_SIM_NOW: when }, encoding: 'utf8',
    })
    if (r.status !== 0) throw new Error(`seed: vzdump ${args.join(' ')} failed:\n${r.stdout}${r.stderr}`)
  }
  w('images/vm-101-disk-0.raw', diskImage('web01 scsi0 2026-11-20', 8))
  vzdump('2026-11-20T03:00:02', ['101', '--compress', 'lzo'])
  w('images/vm-101-disk-0.raw', diskImage('web01 scsi0 2026-11-23', 8))
  rootfs(110, 'dns01', '2026-11-23')
  vzdump('2026-11-23T03:00:02', ['101', '110', '--compress', 'gzip'])
  // dns01's first backup is zstd like the daily job; re-do it with zstd (gzip above was for 101)
  fs.rmSync(path.join(pve, 'var/lib/vz/dump/vzdump-lxc-110-2026_11_23-03_00_02.tar.gz'))
  fs.rmSync(path.join(pve, 'var/lib/vz/dump/vzdump-lxc-110-2026_11_23-03_00_02.log'))
  vzdump('2026-11-23T03:00:02', ['110', '--compress', 'zstd'])
  w('images/vm-101-disk-0.raw', diskImage('web01 scsi0 2026-11-25', 8))
  rootfs(110, 'dns01', '2026-11-25')
  rootfs(120, 'minio', '2026-11-25')
  minioInstalled(path.join(pve, 'images/vm-120-disk-0'))
  vzdump('2026-11-25T03:00:02', ['101', '110', '120', '200', '--compress', 'zstd', '--notes-template', '{{guestname}}'])
  for (const f of ['vzdump-lxc-110-2026_11_25-03_00_02.tar.zst.notes', 'vzdump-lxc-120-2026_11_25-03_00_02.tar.zst.notes', 'vzdump-qemu-200-2026_11_25-03_00_02.vma.zst.notes']) {
    fs.rmSync(path.join(pve, 'var/lib/vz/dump', f)) // only web01's latest backup carries notes
  }
  w(`var/lib/vz/dump/${BACKUPS.web01[0]}.protected`, '')
  // the live disks moved on since the last backup
  w('images/vm-101-disk-0.raw', diskImage('web01 scsi0 current', 8))
  rootfs(110, 'dns01', 'current')
  fs.rmSync(path.join(pve, 'calls.log'), { force: true })
  // the logs name the archive where it will live once reset() copies the tree into the lab
  const dump = path.join(pve, 'var/lib/vz/dump')
  for (const f of fs.readdirSync(dump).filter((n) => n.endsWith('.log'))) {
    const text = fs.readFileSync(path.join(dump, f), 'utf8')
    fs.writeFileSync(path.join(dump, f), text.split(pve).join(path.join(labDir, 'pve')))
  }
  fs.writeFileSync(path.join(cache, 'done'), new Date().toISOString() + '\n')
  return ready
}
