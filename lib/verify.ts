// verify:backups (US5): the checks and their results as data. Files are checked ON the node by one
// bash script (NODE_SCRIPT) that runs the node contract's commands in parallel across its cores and
// streams one result line per file; parseNodeLine/fileItem turn those lines into checks. Freshness
// (missing/stale guests) and Terraform state versions are pure functions of what was listed/downloaded.
import type { Backup, GuestType } from './backups.ts'
import { parseBackupName } from './backups.ts'
import type { BackupJob, Resource } from './pve.ts'
import { DEFINE_CLUSTER_READER, missingClustersMessage, parseMissingClusters } from './vma.ts'

export type Status = 'ok' | 'warning' | 'failed' | 'skipped'

export interface Check {
  /** size · compression · vma header · vma extents · vma clusters · tar listing · pct.conf · checksum · log · … */
  name: string
  status: Status
  detail?: string
}

export interface FileItem {
  kind: 'file'
  node: string
  storage: string
  volid: string
  file: string
  vmid: number
  type: GuestType
  size: number
  ctime: number
  status: Status
  checks: Check[]
  /** For a failed file: the next older backup of the same guest that passed (volid), or null. */
  nextOlderGood?: string | null
}

export interface GuestItem {
  kind: 'guest'
  vmid: number
  type: GuestType | undefined
  name: string | undefined
  status: Status
  maxAgeHours: number
  /** The newest backup that did not fail its checks. */
  lastGood?: { volid: string; ctime: number; ageHours: number; size: number }
  detail: string
}

export interface StateItem {
  kind: 'state'
  env: string
  bucket: string
  key: string
  versionId: string
  lastModified: string
  isLatest: boolean
  size: number
  status: Status
  checks: Check[]
  serial?: number
}

export type Item = FileItem | GuestItem | StateItem

/** The worst status wins: failed > warning > ok > skipped. */
export function worst(statuses: Status[]): Status {
  for (const s of ['failed', 'warning', 'ok'] as const) if (statuses.includes(s)) return s
  return 'skipped'
}

// ---------------------------------------------------------------------------------------------
// The node-side script. stdin: one file per line, tab-separated: id, path, compression
// (zst|gz|lzo|bz2|-), kind (vma|tar), log path, SHA256SUMS path. $1: parallel jobs (0 = one per core);
// $2: full | meta (metadata only: size and log, no archive read — --dry-run and the 1,000-file benchmark).
// stdout: per file ONE line (one write, so parallel jobs never interleave):
//   id <TAB> size <TAB> compression <TAB> content <TAB> checksum <TAB> log
// each status being ok | ok:detail | skip | skip:why | warn:why | fail:why | fail:vma:… | fail:tar:…
// Commands used (node contract): stat -c %s, zstd/zcat/lzop/bzip2 -d -c and -t, vma verify -, perl (the
// cluster reader of lib/vma.ts between the decompressor and vma: vma verify does not count clusters),
// tar -tf, sha256sum, cat, test; everything else is a bash builtin. The verify pipes run with pipefail
// semantics by reading PIPESTATUS; when a pipe fails, the compressor's own -t decides whether the
// compressed stream or the archive inside is at fault (an early vma exit breaks the pipe for zstd).
// Written with %{…} for bash's ${…} (a template literal would interpolate it); replaced below.
export const NODE_SCRIPT = String.raw`
set -u
clean() { local s=%{1//$'\t'/ }; s=%{s//$'\r'/}; s=%{s//$'\n'/ | }; REPLY=%{s:0:300}; }
check() {
  local id=$1 f=$2 comp=$3 kind=$4 log=$5 sums=$6 size=%{7-}
  local s_comp=skip s_content=skip s_sum=skip s_log=skip out codes dc pc mc l msg=
  local -a dec tst
  if [[ -z $size ]] && ! size=$(stat -c %s "$f" 2>&1); then clean "$size"; printf '%s\t-\tskip\tfail:missing:%s\tskip\tskip\n' "$id" "$REPLY"; return; fi
  if [[ $size == - ]]; then printf '%s\t-\tskip\tfail:missing:no such file\tskip\tskip\n' "$id"; return; fi
  case $comp in
    zst) dec=(zstd -q -d -c); tst=(zstd -t) ;;
    gz)  dec=(zcat); tst=(gzip -t) ;;
    lzo) dec=(lzop -d -c); tst=(lzop -t) ;;
    bz2) dec=(bzip2 -d -c); tst=(bzip2 -t) ;;
    *)   dec=(cat); tst=() ;;
  esac
  if [[ $size == 0 ]]; then
    s_content='fail:empty:the file is empty (0 bytes)'
  elif [[ $mode == meta ]]; then
    s_content='skip:metadata only'
  elif [[ $kind == vma ]] && ! type -P vma >/dev/null; then
    s_content='warn:vma is not installed on the node: extents not verified'
    if ((%{#tst[@]})); then if out=$("%{tst[@]}" "$f" 2>&1); then s_comp=ok; else clean "%{out##*$'\r'}"; s_comp="fail:$REPLY"; fi; fi
  else
    if [[ $kind == vma ]]; then
      # the cluster reader (lib/vma.ts) sits between the two; its verdict comes through fd 3
      out=$({ "%{dec[@]}" "$f" 2>/dev/null | perl -e "$pl" 2>&3 | vma verify - 2>&1 >/dev/null; echo "@@%{PIPESTATUS[0]}:%{PIPESTATUS[2]}:%{PIPESTATUS[1]}"; } 3>&1)
    else
      out=$("%{dec[@]}" "$f" 2>/dev/null | tar -tf - 2>&1; echo "@@%{PIPESTATUS[0]}:%{PIPESTATUS[1]}")
    fi
    codes=%{out##*@@}; out=%{out%@@*}; dc=%{codes%%:*}; codes=%{codes#*:}; pc=%{codes%%:*}; mc=%{codes#*:}
    [[ $kind == vma ]] || mc=0
    if [[ $dc == 0 && $pc == 0 && $mc == 97 ]]; then
      ((%{#tst[@]})) && s_comp=ok
      msg=; while IFS= read -r l; do [[ $l == vma-clusters:* ]] && msg+="%{l#vma-clusters: } | "; done <<<"$out"
      clean "%{msg% | }"; s_content="fail:clusters:$REPLY"
    elif [[ $dc == 0 && $pc == 0 && $mc == 0 ]]; then
      ((%{#tst[@]})) && s_comp=ok
      if [[ $kind == vma ]]; then s_content=ok
      elif [[ $'\n'$out == *$'\n./etc/vzdump/pct.conf\n'* ]]; then s_content=ok
      else s_content='fail:pct:./etc/vzdump/pct.conf is not in the archive'; fi
    else
      if ((%{#tst[@]})); then if msg=$("%{tst[@]}" "$f" 2>&1); then s_comp=ok; else clean "%{msg##*$'\r'}"; s_comp="fail:$REPLY"; fi; fi
      if [[ $s_comp == fail:* ]]; then s_content='skip:not read: the compressed stream is broken'
      elif [[ $kind == vma && $pc == 0 ]]; then clean "$out"; s_content="fail:vma:decompressor exit $dc, cluster reader exit $mc: $REPLY"
      elif [[ $kind == vma ]]; then msg=; while IFS= read -r l; do [[ $l == vma-clusters:* ]] || msg+="$l"$'\n'; done <<<"$out"; clean "$msg"; s_content="fail:vma:$REPLY"
      else
        msg=; while IFS= read -r l; do [[ $l == tar:* ]] && msg+="$l "; done <<<"$out"
        clean "%{msg:-tar exit $pc}"; s_content="fail:tar:$REPLY"
      fi
    fi
  fi
  local want= src= got
  if [[ -e $f.sha256 ]]; then src=.sha256; read -r want _ <"$f.sha256" || true
  elif [[ -e $sums ]]; then
    while read -r got l || [[ -n $got ]]; do l=%{l#\*}; if [[ $l == "%{f##*/}" ]]; then want=$got; src=SHA256SUMS; break; fi; done <"$sums"
  fi
  if [[ -n $src && $mode == meta ]]; then s_sum="skip:$src present, not hashed (metadata only)"
  elif [[ -n $src ]]; then
    if [[ ! $want =~ ^[0-9a-fA-F]{64}$ ]]; then s_sum="fail:$src holds no SHA-256 for this file"
    else
      got=$(sha256sum "$f" 2>&1); got=%{got%% *}
      if [[ %{got,,} == "%{want,,}" ]]; then s_sum="ok:$src"; else s_sum="fail:$src expects %{want:0:16}…, the file hashes to %{got:0:16}…"; fi
    fi
  fi
  if [[ ! -e $log ]]; then s_log='warn:no vzdump log beside the archive'
  else
    local err= fin=
    while IFS= read -r l || [[ -n $l ]]; do [[ -z $err && $l == *ERROR:* ]] && err=$l; [[ $l == *'Finished Backup'* ]] && fin=1; done <"$log"
    if [[ -n $err ]]; then clean "$err"; s_log="fail:$REPLY"
    elif [[ -z $fin ]]; then s_log='fail:the log never says "Finished Backup"'
    else s_log=ok; fi
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$id" "$size" "$s_comp" "$s_content" "$s_sum" "$s_log"
}
n=%{1:-0} mode=%{2:-full}
${DEFINE_CLUSTER_READER}
if ((n < 1)); then n=0; while read -r l _; do [[ $l == processor ]] && ((n++)); done </proc/cpuinfo; ((n < 1)) && n=1; fi
mapfile -t lines
# one stat for every file: a process per file costs more than checking a small archive
declare -A sizes; paths=()
for line in "%{lines[@]}"; do IFS=$'\t' read -r a b _ <<<"$line"; paths+=("$b"); done
while read -r s p; do sizes[$p]=$s; done < <(stat -c '%s %n' -- "%{paths[@]}" 2>/dev/null)
if [[ $mode == meta ]]; then
  # metadata only: builtins from here on (no process per file)
  for line in "%{lines[@]}"; do
    IFS=$'\t' read -r a b c d e g <<<"$line"
    check "$a" "$b" "$c" "$d" "$e" "$g" "%{sizes[$b]:--}"
  done
  exit 0
fi
running=0
for line in "%{lines[@]}"; do
  IFS=$'\t' read -r a b c d e g <<<"$line"
  check "$a" "$b" "$c" "$d" "$e" "$g" "%{sizes[$b]-}" & # a file the bulk stat missed: its own stat names why
  if ((++running >= n)); then wait -n; ((running--)); fi
done
wait
`.replaceAll('%{', '${')

export interface NodeJob {
  id: number
  path: string
  backup: Backup
}

/** The stdin of NODE_SCRIPT for these files, largest first: the node's cores then finish together
 *  instead of one of them starting the biggest file last. Paths with a tab or newline cannot be sent. */
export function nodeInput(jobs: NodeJob[], dumpDir: (b: Backup) => string): string {
  return [...jobs]
    .sort((a, b) => b.backup.size - a.backup.size)
    .map((j) => {
      const name = parseBackupName(j.backup.file)
      const dir = dumpDir(j.backup)
      const log = name ? `${dir}/${name.logName}` : `${j.path}.log`
      const kind = j.backup.format.startsWith('vma') ? 'vma' : 'tar'
      return [j.id, j.path, j.backup.compression ?? '-', kind, log, `${dir}/SHA256SUMS`].join('\t')
    })
    .join('\n') + '\n'
}

export interface NodeLine {
  id: number
  size: number | undefined
  compression: string
  content: string
  checksum: string
  log: string
}

export function parseNodeLine(line: string): NodeLine | undefined {
  const f = line.split('\t')
  if (f.length !== 6 || !/^\d+$/.test(f[0]!)) return undefined
  return { id: Number(f[0]), size: /^\d+$/.test(f[1]!) ? Number(f[1]) : undefined, compression: f[2]!, content: f[3]!, checksum: f[4]!, log: f[5]! }
}

/** `ok` / `fail:why` / `warn:why` / `skip:why` → a Check. */
function statusCheck(name: string, raw: string): Check {
  const [head, ...rest] = raw.split(':')
  const detail = tidy(rest.join(':')) || undefined
  const status: Status = head === 'ok' ? 'ok' : head === 'fail' ? 'failed' : head === 'warn' ? 'warning' : 'skipped'
  return detail ? { name, status, detail } : { name, status }
}

/** A tool's message without the file's folder (the line names the file already) or padding. */
const tidy = (s: string) => s.replace(/\/\S*\/(?=[^/\s]+)/g, '').replace(/\s+/g, ' ').trim()

// vma-reader.c vma_reader_read_head: which header field each error names.
const VMA_HEADER_ERRORS: Array<[RegExp, string]> = [
  [/can't read vma header|timeout reading VMA header/, 'header cut short'],
  [/wrong magic number/, 'magic'],
  [/wrong vma header size/, 'header size'],
  [/wrong vma header chechsum/, 'header MD5'],
  [/wrong vma version/, 'version'],
  [/wrong vma blob buffer/, 'blob table'],
  [/invalid data pointers/, 'device table'],
]

/** vma's message without g_error's `** (vma:123): ERROR **: 10:00:00.000: ` prefix. */
export function vmaMessage(text: string): string {
  const lines = text.split(' | ').map((l) => l.replace(/^.*ERROR \*\*:\s*(\d[\d:.]*:\s*)?/, '').replace(/^vma:\s*/, '').replace(/^verify failed - /, '').trim()).filter(Boolean)
  return lines.find((l) => /wrong|short|missing|can't|not a vma|invalid|duplicated|beyond|out of order|timeout|error/i.test(l)) ?? lines.at(-1) ?? 'vma verify failed'
}

/** The content check of a file: vma header / vma extents / tar listing / pct.conf / empty. */
function contentChecks(raw: string, format: string): Check[] {
  const vma = format.startsWith('vma')
  if (raw.startsWith('fail:empty:')) return [{ name: 'size', status: 'failed', detail: raw.slice('fail:empty:'.length) }]
  if (raw.startsWith('fail:missing:')) return [{ name: 'exists', status: 'failed', detail: raw.slice('fail:missing:'.length) }]
  if (raw.startsWith('fail:vma:')) {
    const msg = vmaMessage(raw.slice('fail:vma:'.length))
    const field = VMA_HEADER_ERRORS.find(([re]) => re.test(msg))?.[1]
    return field
      ? [{ name: 'vma header', status: 'failed', detail: `${msg} (${field})` }]
      : [{ name: 'vma header', status: 'ok' }, { name: 'vma extents', status: 'failed', detail: msg }]
  }
  if (raw.startsWith('fail:clusters:')) {
    const missing = parseMissingClusters(raw.slice('fail:clusters:'.length).split(' | ').map((l) => `vma-clusters: ${l}`).join('\n'))
    const detail = missing.length ? missingClustersMessage(missing) : raw.slice('fail:clusters:'.length)
    return [{ name: 'vma header', status: 'ok' }, { name: 'vma extents', status: 'ok' }, { name: 'vma clusters', status: 'failed', detail }]
  }
  if (raw.startsWith('fail:tar:')) return [{ name: 'tar listing', status: 'failed', detail: raw.slice('fail:tar:'.length).trim() }]
  if (raw.startsWith('fail:pct:')) return [{ name: 'tar listing', status: 'ok' }, { name: 'pct.conf', status: 'failed', detail: raw.slice('fail:pct:'.length) }]
  if (raw === 'ok') return vma ? [{ name: 'vma header', status: 'ok' }, { name: 'vma extents', status: 'ok' }, { name: 'vma clusters', status: 'ok' }] : [{ name: 'tar listing', status: 'ok' }, { name: 'pct.conf', status: 'ok' }]
  return [statusCheck(vma ? 'vma extents' : 'tar listing', raw)]
}

const TESTER: Record<string, string> = { zst: 'zstd -t', gz: 'gzip -t', lzo: 'lzop -t', bz2: 'bzip2 -t' }

/** The compressor's own verdict, e.g. `zstd -t: Read error (39) : premature end`. */
function compressionCheck(raw: string, compression: string): Check {
  const c = statusCheck('compression', raw)
  if (c.status !== 'failed' || !c.detail) return c
  const msg = c.detail.split(' | ')[0]!.replace(/^(zstd|gzip|lzop|bzip2):\s*/, '').replace(/^\S*\.(zst|gz|lzo|bz2|tgz)\s*:\s*/, '')
  return { ...c, detail: `${TESTER[compression] ?? 'test'}: ${msg}` }
}

/** One backup file's item from its listing entry and the node's result line. */
export function fileItem(node: string, b: Backup, r: NodeLine): FileItem {
  const checks: Check[] = []
  if (r.size === undefined) checks.push(...contentChecks(r.content, b.format))
  else {
    if (r.size === 0) checks.push({ name: 'size', status: 'failed', detail: 'the file is empty (0 bytes)' })
    else if (r.size !== b.size) checks.push({ name: 'size', status: 'failed', detail: `${r.size} bytes on disk, the storage listed ${b.size}` })
    else checks.push({ name: 'size', status: 'ok' })
    if (b.compression) checks.push(compressionCheck(r.compression, b.compression))
    if (r.size > 0) checks.push(...contentChecks(r.content, b.format))
  }
  if (r.checksum !== 'skip') checks.push(statusCheck('checksum', r.checksum))
  checks.push(statusCheck('log', r.log))
  const status = worst(checks.map((c) => c.status))
  return { kind: 'file', node, storage: b.storage, volid: b.volid, file: b.file, vmid: b.vmid, type: b.type, size: r.size ?? 0, ctime: b.ctime, status, checks }
}

/** A file the node never answered for (the script died, or a path we could not send). */
export function unansweredItem(node: string, b: Backup, why: string): FileItem {
  return { kind: 'file', node, storage: b.storage, volid: b.volid, file: b.file, vmid: b.vmid, type: b.type, size: b.size, ctime: b.ctime, status: 'failed', checks: [{ name: 'node check', status: 'failed', detail: why }] }
}

/** For every failed file: the next older backup of the same guest that did not fail. */
export function linkOlderGood(files: FileItem[]): void {
  for (const f of files) {
    if (f.status !== 'failed') continue
    const older = files
      .filter((o) => o.vmid === f.vmid && o.status !== 'failed' && (o.ctime < f.ctime || (o.ctime === f.ctime && o.file < f.file)))
      .sort((a, b) => b.ctime - a.ctime)[0]
    f.nextOlderGood = older?.volid ?? null
  }
}

// ---------------------------------------------------------------------------------------------
// Missing and stale (US5.3).

export const DEFAULT_MAX_AGE_HOURS = 26
/** Hours added to a job's longest gap between runs: a daily job gives 24 + 2 = 26 h. */
export const GRACE_HOURS = 2

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat']
const KEYWORDS: Record<string, number> = { minutely: 1 / 60, hourly: 1, daily: 24, weekly: 168, monthly: 744, quarterly: 2232, semiannually: 4464, yearly: 8784, annually: 8784 }

/** The longest gap in hours between two runs of a Proxmox calendar event (the vzdump job schedule),
 *  or undefined when it cannot be read. Supports keywords, weekday lists/ranges and H:M with
 *  lists, ranges (a..b) and repetitions (a/b, *\/b); a date part counts as monthly. */
export function schedulePeriodHours(schedule: string): number | undefined {
  const s = schedule.trim().toLowerCase()
  if (!s) return undefined
  if (KEYWORDS[s] !== undefined) return KEYWORDS[s]
  const parts = s.split(/\s+/)
  let days = [0, 1, 2, 3, 4, 5, 6]
  if (parts[0] && /^[a-z]/.test(parts[0])) {
    const set = new Set<number>()
    for (const p of parts.shift()!.split(',')) {
      const [a, b] = p.split('..').map((d) => DAYS.indexOf(d.slice(0, 3)))
      if (a === undefined || a < 0 || (b !== undefined && b < 0)) return undefined
      for (let d = a; ; d = (d + 1) % 7) { set.add(d); if (b === undefined || d === b) break }
    }
    days = [...set]
  }
  if (parts[0]?.includes('-')) return KEYWORDS.monthly
  const time = parts[0] ?? '0:0'
  if (parts.length > 1) return undefined
  const [hs, ms = '0'] = time.split(':')
  const hours = expand(hs ?? '', 24)
  const minutes = expand(ms, 60)
  if (!hours || !minutes || !days.length) return undefined
  const runs: number[] = []
  for (let d = 0; d < 14; d++) if (days.includes(d % 7)) for (const h of hours) for (const m of minutes) runs.push(d * 1440 + h * 60 + m)
  runs.sort((a, b) => a - b)
  let gap = runs[0]! + 14 * 1440 - runs.at(-1)!
  for (let i = 1; i < runs.length; i++) gap = Math.max(gap, runs[i]! - runs[i - 1]!)
  return gap / 60
}

function expand(field: string, size: number): number[] | undefined {
  const out = new Set<number>()
  for (const p of field.split(',')) {
    const m = /^(\*|\d+)(?:\.\.(\d+))?(?:\/(\d+))?$/.exec(p)
    if (!m) return undefined
    const start = m[1] === '*' ? 0 : Number(m[1])
    const end = m[2] !== undefined ? Number(m[2]) : m[1] === '*' || m[3] ? size - 1 : start
    const step = m[3] ? Number(m[3]) : 1
    if (start >= size || end >= size || step < 1) return undefined
    for (let v = start; v <= end; v += step) out.add(v)
  }
  return [...out]
}

/** Guests that must have a recent backup, each with its allowed age: every guest of
 *  /cluster/resources (templates excluded) and every guest of an enabled backup job. */
export function expectedGuests(resources: Resource[], jobs: BackupJob[], maxAgeFlag: number | undefined): Array<{ vmid: number; type: GuestType | undefined; name: string | undefined; maxAgeHours: number }> {
  const wanted = new Map<number, { vmid: number; type: GuestType | undefined; name: string | undefined; maxAgeHours: number | undefined }>()
  for (const r of resources) if (!r.template) wanted.set(r.vmid, { vmid: r.vmid, type: r.type, name: r.name, maxAgeHours: undefined })
  for (const job of jobs.filter((j) => j.enabled)) {
    const period = schedulePeriodHours(job.schedule)
    const limit = period === undefined ? undefined : period + GRACE_HOURS
    const vmids = job.all ? resources.filter((r) => !r.template).map((r) => r.vmid) : job.vmids
    for (const vmid of vmids) {
      const r = resources.find((x) => x.vmid === vmid)
      const g = wanted.get(vmid) ?? { vmid, type: r?.type, name: r?.name, maxAgeHours: undefined }
      if (limit !== undefined) g.maxAgeHours = Math.min(g.maxAgeHours ?? Infinity, limit)
      wanted.set(vmid, g)
    }
  }
  return [...wanted.values()]
    .sort((a, b) => a.vmid - b.vmid)
    .map((g) => ({ ...g, maxAgeHours: maxAgeFlag ?? g.maxAgeHours ?? DEFAULT_MAX_AGE_HOURS }))
}

/** One guest's freshness from its files (checked, or merely listed with --no-files). */
export function guestItem(g: { vmid: number; type: GuestType | undefined; name: string | undefined; maxAgeHours: number }, files: Array<Pick<FileItem, 'vmid' | 'volid' | 'ctime' | 'size' | 'status'>>, nowSeconds: number): GuestItem {
  const mine = files.filter((f) => f.vmid === g.vmid).sort((a, b) => b.ctime - a.ctime)
  const good = mine.find((f) => f.status !== 'failed')
  const base = { kind: 'guest' as const, vmid: g.vmid, type: g.type, name: g.name, maxAgeHours: g.maxAgeHours }
  if (!good) {
    const detail = mine.length ? `no good backup (${mine.length} damaged)` : 'no backup'
    return { ...base, status: 'warning', detail }
  }
  const ageHours = Math.max(0, (nowSeconds - good.ctime) / 3600)
  const lastGood = { volid: good.volid, ctime: good.ctime, ageHours: Math.round(ageHours * 10) / 10, size: good.size }
  const age = formatAge(ageHours)
  if (ageHours > g.maxAgeHours) return { ...base, status: 'warning', lastGood, detail: `stale: newest good backup is ${age} old (max ${g.maxAgeHours} h)` }
  return { ...base, status: 'ok', lastGood, detail: `newest good backup ${age} old` }
}

export function formatAge(hours: number): string {
  return hours >= 48 ? `${Math.floor(hours / 24)} d ${Math.round(hours % 24)} h` : `${Math.round(hours)} h`
}

// ---------------------------------------------------------------------------------------------
// Terraform state versions (US5.2): pure check of one downloaded version.

export function stateChecks(body: string | undefined, downloadError?: string): { checks: Check[]; serial?: number } {
  if (body === undefined) return { checks: [{ name: 'download', status: 'failed', detail: downloadError ?? 'no body' }] }
  const checks: Check[] = [{ name: 'download', status: 'ok' }]
  if (body.trim() === '') return { checks: [...checks, { name: 'not empty', status: 'failed', detail: 'the version is empty (0 bytes)' }] }
  checks.push({ name: 'not empty', status: 'ok' })
  let doc: unknown
  try {
    doc = JSON.parse(body)
  } catch (e) {
    return { checks: [...checks, { name: 'json', status: 'failed', detail: `not JSON: ${(e as Error).message}` }] }
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return { checks: [...checks, { name: 'json', status: 'failed', detail: 'not a JSON object' }] }
  checks.push({ name: 'json', status: 'ok' })
  const o = doc as Record<string, unknown>
  const missing = ['version', 'serial', 'lineage'].filter((k) => o[k] === undefined || o[k] === null || o[k] === '')
  checks.push(missing.length ? { name: 'state fields', status: 'failed', detail: `missing ${missing.join(', ')}` } : { name: 'state fields', status: 'ok' })
  return { checks, serial: typeof o.serial === 'number' ? o.serial : undefined }
}

/** A duration as 0:42, 12:05 or 1:02:03. */
export function clock(seconds: number): string {
  const s = Math.round(seconds)
  const mmss = `${Math.floor((s % 3600) / 60)}:${String(s % 60).padStart(2, '0')}`
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mmss.padStart(5, '0')}` : mmss
}
