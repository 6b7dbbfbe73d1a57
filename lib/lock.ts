// One run at a time per guest or per environment, on this machine. A lock is a file created
// exclusively (O_EXCL) in the lock folder, holding who took it (task, pid, host, start time, command);
// a second run is refused with that, exit 4, nothing changed. A lock whose process is gone (same host,
// pid not running) is stale and taken over. Released by release(), and at process exit whatever path
// the run took (the interrupt handler exits too).
//
//   const lock = takeLock({ kind: 'guest', node: 'pve', vmid: 101 }, 'restore:vm')   // throws DrError
//   try { … } finally { lock.release() }
//
// Scope: runs on one machine (the operator's). A run from another machine is not seen: for a
// guest, Proxmox's own config lock refuses a second qmrestore; for an environment, terraform's S3 lock.
import { closeSync, constants, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs'
import { homedir, hostname } from 'node:os'
import { join } from 'node:path'
import { DrError } from './errors.ts'

export type LockKey = { kind: 'guest'; node: string; vmid: number } | { kind: 'environment'; name: string }

export interface Holder {
  task: string
  pid: number
  host: string
  started: string
  command: string
}

export interface Lock {
  file: string
  release(): void
}

/** The lock folder: $HDR_LOCK_DIR, else $XDG_STATE_HOME/homelab-dr/locks (~/.local/state/…). */
export function lockDir(): string {
  if (process.env.HDR_LOCK_DIR) return process.env.HDR_LOCK_DIR
  return join(process.env.XDG_STATE_HOME || join(homedir(), '.local', 'state'), 'homelab-dr', 'locks')
}

/** Takes the lock or throws DrError 'prerequisites' naming who holds it. */
export function takeLock(key: LockKey, task: string): Lock {
  const dir = lockDir()
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const file = join(dir, fileName(key))
  const me: Holder = { task, pid: process.pid, host: hostname(), started: new Date().toISOString(), command: process.argv.slice(2).join(' ') }
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600)
      writeSync(fd, JSON.stringify(me) + '\n')
      closeSync(fd)
      return register(file)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new DrError('prerequisites', `Cannot take the lock ${file}: ${(e as Error).message}`)
    }
    const holder = readHolder(file)
    if (holder && !isStale(holder)) throw held(key, holder, file)
    rmSync(file, { force: true }) // stale or unreadable: its run is gone
  }
  throw held(key, readHolder(file), file)
}

function fileName(key: LockKey): string {
  const safe = (s: string) => s.replace(/[^A-Za-z0-9._-]/g, '_')
  return key.kind === 'guest' ? `guest-${safe(key.node)}-${key.vmid}.lock` : `env-${safe(key.name)}.lock`
}

function readHolder(file: string): Holder | undefined {
  try {
    const h = JSON.parse(readFileSync(file, 'utf8')) as Holder
    return typeof h.pid === 'number' && typeof h.host === 'string' ? h : undefined
  } catch {
    return undefined
  }
}

function isStale(h: Holder): boolean {
  if (h.host !== hostname()) return false // another machine's run: never guessed dead
  if (h.pid === process.pid) return false
  try {
    process.kill(h.pid, 0)
    return false
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH'
  }
}

function held(key: LockKey, h: Holder | undefined, file: string): DrError {
  const what = key.kind === 'guest' ? `guest ${key.vmid} on node '${key.node}'` : `environment '${key.name}'`
  const who = h ? `${h.task} (pid ${h.pid} on ${h.host}, started ${h.started}${h.command ? `: ${h.command}` : ''})` : 'another run'
  return new DrError('prerequisites', `Another homelab-dr run is working on ${what}: ${who}. Nothing was changed.`,
    `Wait for it to finish. If that run is gone (its machine rebooted), remove the lock: rm '${file}'`)
}

const held_ = new Set<string>()
process.on('exit', () => {
  for (const f of held_) rmSync(f, { force: true })
})

function register(file: string): Lock {
  held_.add(file)
  return {
    file,
    release() {
      if (!held_.delete(file)) return
      if (readHolder(file)?.pid === process.pid) rmSync(file, { force: true })
    },
  }
}
