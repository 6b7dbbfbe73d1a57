// The Proxmox VE node, as ../shared/node-contract.md describes it: typed reads whose answers are
// validated at the edge (Perl booleans arrive as 0/1, optional fields may be absent), and the
// guest-config grammar. Writes are issued by the scripts through the same Ssh, as argvs.
import { DrError } from './errors.ts'
import { archiveInfo, localIso, type Backup, type GuestType } from './backups.ts'
import type { RemoteResult, Ssh } from './ssh.ts'

export interface Resource {
  vmid: number
  type: GuestType
  node: string
  status: string
  name: string | undefined
  lock: string | undefined
  template: boolean
}

export interface Storage {
  storage: string
  type: string
  content: string[]
  enabled: boolean
  active: boolean
  total: number
  used: number
  avail: number
}

export interface BackupJob {
  id: string
  schedule: string
  enabled: boolean
  storage: string | undefined
  all: boolean
  vmids: number[]
}

export type GuestConfig = Record<string, string>

/**
 * A read of the node as data: its argv, and how its answer is read (validated; a failure is a DrError).
 * Run alone with Pve.read, or several in one round trip with Pve.together.
 */
export interface Read<T> {
  argv: string[]
  answer(r: RemoteResult): Promise<T>
}

export class Pve {
  constructor(
    readonly ssh: Ssh,
    /** The node's own name (from `hostname`), used in /nodes/{node}/… */
    readonly node: string,
  ) {}

  /** Connects (EC-1 on failure) and learns the node's name. */
  static async connect(ssh: Ssh): Promise<Pve> {
    const name = await ssh.connect()
    if (!/^[A-Za-z0-9][A-Za-z0-9-]*$/.test(name)) throw new DrError('failed', `Node answered \`hostname\` with ${JSON.stringify(name)}, not a node name.`)
    return new Pve(ssh, name)
  }

  /** Runs one read. */
  async read<T>(q: Read<T>): Promise<T> {
    return q.answer(await this.ssh.run(q.argv, { timeoutMs: 60_000 }))
  }

  /**
   * Several independent reads in one round trip (issue 14). Returns one function per read, in order,
   * that gives its answer: the round trip is made when the first is called, and each answer is read
   * (and fails with its own sentence) only when its own function is called.
   */
  together<T extends unknown[]>(reads: { [K in keyof T]: Read<T[K]> }): { [K in keyof T]: () => Promise<T[K]> } {
    let results: Promise<RemoteResult[]> | undefined
    const all = () => (results ??= this.ssh.runBatch(reads.map((q) => q.argv), { timeoutMs: 60_000 }))
    return reads.map((q, i) => async () => q.answer((await all())[i]!)) as { [K in keyof T]: () => Promise<T[K]> }
  }

  /** `pvesh get PATH [params] --output-format json`, parsed. */
  async get(path: string, params: string[] = []): Promise<unknown> {
    return this.read(this.getRead(path, params))
  }

  private getRead(path: string, params: string[] = []): Read<unknown> {
    const argv = ['pvesh', 'get', path, ...params, '--output-format', 'json']
    return {
      argv,
      answer: async (r) => {
        if (r.exitCode !== 0) throw new DrError('failed', `\`${argv.join(' ')}\` failed on node '${this.node}': ${lastLine(r.stderr || r.stdout)}`)
        try {
          return JSON.parse(r.stdout) as unknown
        } catch {
          throw new DrError('failed', `\`${argv.join(' ')}\` on node '${this.node}' did not answer JSON: ${r.stdout.slice(0, 200)}`)
        }
      },
    }
  }

  async resources(): Promise<Resource[]> {
    const list = arrayOf(await this.get('/cluster/resources', ['--type', 'vm']), '/cluster/resources')
    return list.map((o) => {
      const type = str(o, 'type', '/cluster/resources')
      if (type !== 'qemu' && type !== 'lxc') throw badAnswer('/cluster/resources', `type ${JSON.stringify(type)}`)
      return {
        vmid: int(o, 'vmid', '/cluster/resources'),
        type,
        node: str(o, 'node', '/cluster/resources'),
        status: optStr(o, 'status') ?? 'unknown',
        name: optStr(o, 'name'),
        lock: optStr(o, 'lock'),
        template: bool(o.template),
      }
    })
  }

  async storages(content?: string): Promise<Storage[]> {
    return this.read(this.storagesRead(content))
  }

  storagesRead(content?: string): Read<Storage[]> {
    const path = `/nodes/${this.node}/storage`
    const q = this.getRead(path, content ? ['--content', content] : [])
    return { argv: q.argv, answer: async (r) => this.parseStorages(await q.answer(r), path) }
  }

  private parseStorages(answer: unknown, path: string): Storage[] {
    const list = arrayOf(answer, path)
    return list.map((o) => ({
      storage: str(o, 'storage', path),
      type: optStr(o, 'type') ?? 'unknown',
      content: (optStr(o, 'content') ?? '').split(',').filter(Boolean),
      enabled: o.enabled === undefined ? true : bool(o.enabled),
      active: bool(o.active),
      total: num(o.total),
      used: num(o.used),
      avail: num(o.avail),
    }))
  }

  /**
   * The backups on one storage (optionally of one VMID), validated, read as pve-storage reads names
   * (lib/backups archiveInfo): renamed or copied dumps (vzdump-qemu-16110-anything.tgz) are listed and
   * flagged as non-standard names; vzdump-openvz-… archives are containers (pct restore reads them).
   * The compression comes from the extension; the time of a non-standard name is the API's ctime (the
   * file's) in the NODE's timezone, never the operator's.
   */
  async backups(storage: string, vmid?: number): Promise<Backup[]> {
    return this.read(this.backupsRead(storage, vmid))
  }

  backupsRead(storage: string, vmid?: number): Read<Backup[]> {
    const path = `/nodes/${this.node}/storage/${storage}/content`
    const q = this.getRead(path, ['--content', 'backup', ...(vmid ? ['--vmid', String(vmid)] : [])])
    return { argv: q.argv, answer: async (r) => this.parseBackups(await q.answer(r), path, storage) }
  }

  private async parseBackups(answer: unknown, path: string, storage: string): Promise<Backup[]> {
    const list = arrayOf(answer, path)
    const out: Backup[] = []
    for (const o of list) {
      const volid = str(o, 'volid', path)
      const file = volid.slice(volid.indexOf(':') + 1).replace(/^backup\//, '').split('/').at(-1)!
      const subtype = optStr(o, 'subtype')
      const info = archiveInfo(file)
      const kind = subtype === 'qemu' || subtype === 'lxc' || subtype === 'openvz' ? subtype : info?.type
      const type: GuestType | undefined = kind === 'qemu' ? 'qemu' : kind === 'lxc' || kind === 'openvz' ? 'lxc' : undefined
      // PBS snapshots, or files Proxmox itself cannot restore (no vzdump-<type>- name): not ours.
      if (!type || !info || o.vmid === undefined) continue
      const ctime = int(o, 'ctime', path)
      out.push({
        volid,
        storage,
        file,
        vmid: int(o, 'vmid', path),
        type,
        format: str(o, 'format', path),
        compression: info.compression,
        size: num(o.size),
        ctime,
        notes: optStr(o, 'notes'),
        protected: bool(o.protected),
        // A standard name carries the node's local time itself (backupLocalTime reads it).
        ...(info.standard ? {} : { nonStandardName: true, localTime: localIso(ctime, await this.timezone()) }),
      })
    }
    return out
  }

  private tz: string | undefined
  /** The node's timezone, as Proxmox reads it (/etc/timezone; pve-manager's /nodes/{node}/time). UTC if unset. */
  async timezone(): Promise<string> {
    if (this.tz) return this.tz
    const r = await this.ssh.run(['cat', '/etc/timezone'])
    const name = r.exitCode === 0 ? r.stdout.trim() : ''
    let tz = 'UTC'
    if (/^[A-Za-z0-9_+\-/]{1,64}$/.test(name)) {
      try {
        new Intl.DateTimeFormat('en', { timeZone: name })
        tz = name
      } catch {
        // an unknown zone name: UTC, as a node with no /etc/timezone
      }
    }
    this.tz = tz
    return tz
  }

  async nextId(): Promise<number> {
    const v = await this.get('/cluster/nextid')
    const n = typeof v === 'string' ? Number(v) : v
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 100) throw badAnswer('/cluster/nextid', JSON.stringify(v))
    return n
  }

  async backupJobs(): Promise<BackupJob[]> {
    const list = arrayOf(await this.get('/cluster/backup'), '/cluster/backup')
    return list.map((o) => ({
      id: str(o, 'id', '/cluster/backup'),
      schedule: optStr(o, 'schedule') ?? optStr(o, 'starttime') ?? '',
      enabled: o.enabled === undefined ? true : bool(o.enabled),
      storage: optStr(o, 'storage'),
      all: bool(o.all),
      vmids: String(o.vmid ?? '').split(',').filter((s) => /^\d+$/.test(s)).map(Number),
    }))
  }

  /** `qm status` / `pct status`: running, stopped, … or 'missing' when the guest does not exist. */
  async status(type: GuestType, vmid: number): Promise<string> {
    const r = await this.ssh.run([tool(type), 'status', String(vmid)])
    if (r.exitCode === 0) {
      const m = /^status: (\S+)/m.exec(r.stdout)
      if (!m) throw badAnswer(`${tool(type)} status`, r.stdout)
      return m[1]!
    }
    if (/does not exist/.test(r.stderr)) return 'missing'
    throw new DrError('failed', `\`${tool(type)} status ${vmid}\` failed on node '${this.node}': ${lastLine(r.stderr)}`)
  }

  /** `qm config` / `pct config`, or undefined when the guest does not exist. */
  async config(type: GuestType, vmid: number): Promise<GuestConfig | undefined> {
    const r = await this.ssh.run([tool(type), 'config', String(vmid)])
    if (r.exitCode !== 0) {
      if (/does not exist/.test(r.stderr)) return undefined
      throw new DrError('failed', `\`${tool(type)} config ${vmid}\` failed on node '${this.node}': ${lastLine(r.stderr)}`)
    }
    return parseGuestConfig(r.stdout)
  }

  /** The guest configuration stored inside a backup (reads only the archive's header). */
  async extractConfig(volid: string): Promise<GuestConfig> {
    const r = await this.ssh.run(['pvesm', 'extractconfig', volid], { timeoutMs: 90_000 })
    if (r.exitCode !== 0) throw new DrError('failed', `Cannot read the configuration inside ${volid}: ${lastLine(r.stderr || r.stdout)}`)
    return parseGuestConfig(r.stdout)
  }

  /** The absolute path of a volume on the node. */
  async path(volid: string): Promise<string> {
    const r = await this.ssh.run(['pvesm', 'path', volid])
    const p = r.stdout.trim()
    if (r.exitCode !== 0 || !p.startsWith('/')) throw new DrError('failed', `Cannot locate ${volid} on node '${this.node}': ${lastLine(r.stderr || r.stdout)}`)
    return p
  }
}

export const tool = (type: GuestType) => (type === 'qemu' ? 'qm' : 'pct')
export const kindWord = (type: GuestType) => (type === 'qemu' ? 'VM' : 'CT')

/** `key: value` lines of the current config; snapshot sections ([name]) and comments are skipped. */
export function parseGuestConfig(text: string): GuestConfig {
  const conf: GuestConfig = {}
  for (const line of text.split('\n')) {
    if (line.startsWith('[')) break
    const m = /^([a-z][a-z0-9_-]*):\s?(.*)$/.exec(line)
    if (m) conf[m[1]!] = m[2]!
  }
  return conf
}

/** The guest's IPv4 address from cloud-init `ipconfig0` (qemu) or `net0` (lxc), if static. */
export function guestAddress(conf: GuestConfig): string | undefined {
  for (const key of ['ipconfig0', 'net0']) {
    const ip = /(?:^|,)ip=([0-9.]+)(?:\/\d+)?(?:,|$)/.exec(conf[key] ?? '')?.[1]
    if (ip) return ip
  }
  return undefined
}

const SIZE_UNITS: Record<string, number> = { K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 }
const DISK_KEY = /^(scsi|sata|virtio|ide|efidisk|tpmstate|rootfs|mp)\d*$/

/** Disks of a config with their sizes in bytes (size=32G), skipping CD-ROMs and backup=0 disks. */
export function guestDisks(conf: GuestConfig): Array<{ key: string; storage: string; bytes: number }> {
  return Object.entries(conf).flatMap(([key, value]) => {
    if (!DISK_KEY.test(key) || /media=cdrom/.test(value) || /(?:^|,)backup=0(?:,|$)/.test(value) || value.startsWith('none')) return []
    const storage = value.split(':')[0] ?? ''
    const m = /(?:^|,)size=(\d+(?:\.\d+)?)([KMGT])?(?:,|$)/.exec(value)
    const bytes = m ? Math.ceil(Number(m[1]) * (SIZE_UNITS[m[2] ?? ''] ?? 1)) : 0
    return [{ key, storage, bytes }]
  })
}

// ---- answer validation ----

type Obj = Record<string, unknown>

function arrayOf(v: unknown, what: string): Obj[] {
  if (!Array.isArray(v) || !v.every((x) => x !== null && typeof x === 'object')) throw badAnswer(what, 'expected a JSON array of objects')
  return v as Obj[]
}

function badAnswer(what: string, detail: string): DrError {
  return new DrError('failed', `Unexpected answer from the node to ${what}: ${detail.slice(0, 200)}`)
}

function str(o: Obj, key: string, what: string): string {
  const v = o[key]
  if (typeof v !== 'string' || v === '') throw badAnswer(what, `field '${key}' missing or not a string`)
  return v
}

function optStr(o: Obj, key: string): string | undefined {
  const v = o[key]
  return typeof v === 'string' && v !== '' ? v : typeof v === 'number' ? String(v) : undefined
}

function int(o: Obj, key: string, what: string): number {
  const v = typeof o[key] === 'string' && /^\d+$/.test(o[key] as string) ? Number(o[key]) : o[key]
  if (typeof v !== 'number' || !Number.isInteger(v)) throw badAnswer(what, `field '${key}' missing or not an integer`)
  return v
}

const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : 0)
const bool = (v: unknown) => v === true || v === 1 || v === '1'
/** The last non-blank line of a command's output: where Proxmox tools put the reason. */
export const lastLine = (s: string) => s.trim().split('\n').map((l) => l.trim()).filter(Boolean).at(-1) ?? 'no output'
