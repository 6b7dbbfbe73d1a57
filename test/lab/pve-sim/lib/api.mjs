// pvesh get for the paths of the contract. Shapes: pve-manager PVE/API2/Cluster.pm (resources,
// nextid, backup), PVE/API2Tools.pm extract_vm_stats; pve-storage src/PVE/API2/Storage/Status.pm,
// src/PVE/API2/Storage/Content.pm, src/PVE/Storage.pm storage_info.
import fs from 'node:fs'
import path from 'node:path'
import {
  NODE, SimError, listGuests, loadConf, confGet, getRun, guestName, loadStorages, activationError,
  readJson, pveDir, now,
} from './state.mjs'
import { listBackups } from './archive.mjs'
import { out, err, parseArgs } from './cli.mjs'
import { configVolumes } from './restore.mjs'

const sizeOf = (v) => { const m = /size=(\d+(?:\.\d+)?)([KMGT]?)/.exec(v ?? ''); return m ? Math.round(Number(m[1]) * ({ '': 1, K: 1024, M: 1048576, G: 1073741824, T: 1099511627776 })[m[2] ?? '']) : 0 }

function resources() {
  const lag = Number(process.env.HDR_SIM_RESOURCES_LAG ?? 10) * 1000
  return listGuests().map(({ vmid, type }) => {
    const conf = loadConf(type, vmid)
    const run = getRun(vmid)
    const e = { id: `${type}/${vmid}`, vmid, node: NODE, type, status: 'unknown' }
    // extract_vm_stats: name/status only once the RRD has data — trails a change by a few seconds
    if (conf.length && now() - run.changed >= lag) {
      e.name = guestName(type, conf)
      e.status = run.running ? 'running' : 'stopped'
      e.uptime = run.running ? Math.floor((now() - run.started) / 1000) : 0
      e.template = 0
      e.maxmem = Number(confGet(conf, 'memory') ?? 512) * 1048576
      e.maxdisk = type === 'lxc' ? sizeOf(confGet(conf, 'rootfs')) : configVolumes(conf).filter((v) => !v.key.startsWith('unused')).map((v) => sizeOf(conf.find((x) => x.key === v.key)?.value)).find((x) => x) ?? 0
      e.maxcpu = Number(confGet(conf, 'cores') ?? 1)
      e.cpu = 0; e.mem = 0; e.disk = 0; e.netin = 0; e.netout = 0; e.diskread = 0; e.diskwrite = 0
    }
    const lock = confGet(conf, 'lock'); if (lock) e.lock = lock
    const tags = confGet(conf, 'tags'); if (tags) e.tags = tags
    return e
  })
}

/**
 * GET /nodes/{node}/status (pve-manager PVE/API2/Nodes.pm status): memory from /proc/meminfo via
 * PVE::ProcFSTools::read_meminfo — { total, used, free, available } in bytes, used = total − available.
 * The lab node has pve/node.json { memTotal, memBase } (bytes; defaults 32 GiB and 2 GiB for the host);
 * each running guest uses its configured memory.
 */
function nodeStatus() {
  const n = readJson(path.join(pveDir, 'node.json'), {})
  const total = n.memTotal ?? 32 * 1073741824
  const used = Math.min(total, (n.memBase ?? 2 * 1073741824) + listGuests().filter(({ vmid }) => getRun(vmid).running)
    .reduce((s, { vmid, type }) => s + Number(String(confGet(loadConf(type, vmid), 'memory') ?? 512).replace(/^current=/, '')) * 1048576, 0))
  return {
    uptime: 12345, pveversion: 'pve-manager/9.1.7/lab', kversion: 'Linux 6.14.8-2-pve', loadavg: ['0.10', '0.12', '0.09'],
    memory: { total, used, free: total - used, available: total - used },
    swap: { total: 8589934592, used: 0, free: 8589934592 },
    cpuinfo: { cpus: 8, sockets: 1, cores: 8, model: 'lab' },
  }
}

function storageIndex(content) {
  const list = []
  for (const [id, st] of Object.entries(loadStorages())) {
    if (content && !st.content.split(',').includes(content)) continue
    const e = { storage: id, type: st.type, content: st.content, enabled: st.enabled ?? 1, active: 0, shared: st.shared ?? 0, total: 0, used: 0, avail: 0 }
    const problem = activationError(id, st)
    if (problem) { err(problem); list.push(e); continue } // storage_info warns and reports zeros
    e.active = 1
    e.total = st.total; e.avail = st.avail; e.used = st.total - st.avail
    e.used_fraction = st.total ? e.used / st.total : 0
    list.push(e)
  }
  return list
}

export async function pvesh(argv) {
  const [verb, p, ...rest] = argv
  if (verb !== 'get') throw new SimError(`unknown command 'pvesh ${verb ?? ''}'`)
  const { opts } = parseArgs(rest, { 'output-format': 'string', type: 'string', content: 'string', vmid: 'int', enabled: 'bool', storage: 'string', noborder: 'bool', noheader: 'bool', human: 'bool' }, `pvesh get ${p}`)
  const url = (p ?? '').replace(/\/+$/, '')
  let m, value
  if (url === '/cluster/resources') value = resources().filter(() => !opts.type || opts.type === 'vm')
  else if (url === '/cluster/nextid') {
    const used = new Set(listGuests().map((g) => g.vmid)); let n = 100; while (used.has(n)) n++; value = String(n)
  } else if (url === '/cluster/backup') value = readJson(path.join(pveDir, 'jobs.json'), [])
  else if ((m = /^\/nodes\/([^/]+)\/storage$/.exec(url))) { nodeCheck(m[1]); value = storageIndex(opts.content) }
  else if ((m = /^\/nodes\/([^/]+)\/storage\/([^/]+)\/content$/.exec(url))) {
    nodeCheck(m[1])
    const st = loadStorages()[m[2] ?? '']
    if (!st) throw new SimError(`storage '${m[2]}' does not exist`)
    const problem = activationError(m[2] ?? '', st)
    if (problem) throw new SimError(problem)
    value = opts.content === 'vztmpl' ? listTemplates(m[2], st) : opts.content && opts.content !== 'backup' ? [] : listBackups(m[2], st, opts.vmid)
  } else if ((m = /^\/nodes\/([^/]+)\/status$/.exec(url))) { nodeCheck(m[1]); value = nodeStatus() }
  else throw new SimError(`No 'get' handler defined for '${url}'`)
  const fmt = opts['output-format'] ?? 'text'
  out(fmt === 'json-pretty' ? JSON.stringify(value, null, 4) : JSON.stringify(value))
  return 0
}
// pve-manager: a wrong node name is refused by the API (hostname check)
function nodeCheck(n) { if (n !== NODE && n !== 'localhost') throw new SimError(`hostname lookup '${n}' failed - failed to get address info for: ${n}: Name or service not known`) }

/** pvesm path VOLID | pvesm extractconfig VOLID | pvesm status (pve-storage src/PVE/CLI/pvesm.pm) */
export async function pvesm(argv) {
  const [sub, volid, ...rest] = argv
  const { volumePath } = await import('./state.mjs')
  if (sub === 'path') {
    if (!volid) throw new SimError('400 not enough arguments\npvesm path <volume>')
    out(volumePath(volid)); return 0
  }
  if (sub === 'extractconfig') {
    if (!volid) throw new SimError('400 not enough arguments\npvesm extractconfig <volume>')
    const file = volumePath(volid)
    if (!fs.existsSync(file)) throw new SimError(`volume '${volid}' does not exist`)
    const { archiveInfo, decompressor, filter } = await import('./archive.mjs')
    const info = archiveInfo(file)
    if (!info) throw new SimError(`cannot determine archive type of '${volid}'`)
    const dec = decompressor(info.comp)
    const raw = dec ? filter(dec, null, file).data : fs.readFileSync(file)
    if (info.kind === 'vma') {
      // Storage.pm extract_vzdump_config_vma: `vma config -` reads only the header
      const { vmaConfigs } = await import('./vma.mjs')
      let cfgs
      try { cfgs = vmaConfigs(raw) } catch (e) { throw new SimError(`command '${dec ? dec.join(' ') + ' ' + file + ' | ' : ''}vma config -' failed: exit code 133`) }
      const c = cfgs['qemu-server.conf']
      if (c === undefined) throw new SimError(`unable to extract configuration for backup format 'vma'`)
      process.stdout.write(c); return 0
    }
    const { spawnSync } = await import('node:child_process')
    const r = spawnSync('tar', ['-xOf', '-', './etc/vzdump/pct.conf'], { input: raw, maxBuffer: 1 << 30 })
    if (!r.stdout.length) throw new SimError(`unable to extract configuration for backup format 'tar'`)
    process.stdout.write(r.stdout); return 0
  }
  if (sub === 'status') {
    out('Name             Type     Status           Total            Used       Available        %')
    for (const s of storageIndex(undefined)) out(`${s.storage.padEnd(16)} ${s.type.padEnd(8)} ${(s.active ? 'active' : 'inactive').padEnd(8)} ${String(Math.floor(s.total / 1024)).padStart(16)} ${String(Math.floor(s.used / 1024)).padStart(15)} ${String(Math.floor(s.avail / 1024)).padStart(15)} ${((s.used_fraction ?? 0) * 100).toFixed(2).padStart(7)}%`)
    return 0
  }
  throw new SimError(`unknown command 'pvesm ${sub ?? ''}'`)
}

/** `vma config FILE|-` (pve-qemu vma.c dump_config). `vma verify` streams in bin/vma. */
export async function vmaCli(argv) {
  const { vmaConfigs } = await import('./vma.mjs')
  const [sub, ...rest] = argv
  const file = rest.find((a) => !a.startsWith('-') || a === '-')
  const data = file === '-' || file === undefined ? fs.readFileSync(0) : fs.readFileSync(file)
  const g = (m) => { const d = new Date(); process.stderr.write(`** (process:${process.pid}): ERROR **: ${d.toTimeString().slice(0, 8)}.${String(d.getMilliseconds()).padStart(3, '0')}: ${m}\n`); return 133 }
  if (sub === 'config') {
    try { const c = vmaConfigs(data); process.stdout.write(c['qemu-server.conf'] ?? ''); return 0 } catch (e) { return g(e.message) }
  }
  throw new SimError(`usage: vma command [command options]\n\nvma list <filename>\nvma config <filename> [-c config]\nvma verify <filename> [-v]`)
}

/**
 * Container templates of a storage (pve-storage src/PVE/Storage/Plugin.pm list_volumes / get_subdir
 * 'vztmpl' = template/cache; format 'tzst' for .tar.zst, 'tgz', 'txz'): only when the storage holds
 * vztmpl content.
 */
function listTemplates(sid, st) {
  if (!st.content.split(',').includes('vztmpl')) return []
  const dir = path.join(pveDir, st.path, 'template/cache')
  let names = []
  try { names = fs.readdirSync(dir) } catch {}
  const fmt = { 'tar.gz': 'tgz', 'tar.xz': 'txz', 'tar.zst': 'tzst', tgz: 'tgz' }
  return names.flatMap((fn) => {
    const ext = /\.(tar\.gz|tar\.xz|tar\.zst|tgz)$/.exec(fn)?.[1]
    if (!ext) return []
    const stat = fs.statSync(path.join(dir, fn))
    return [{ volid: `${sid}:vztmpl/${fn}`, format: fmt[ext], size: stat.size, ctime: Math.floor(stat.mtimeMs / 1000), content: 'vztmpl' }]
  })
}
