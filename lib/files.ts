// Files only the operator may read: reports, state copies, import skeletons. Folders 0700, files 0600,
// also when the file or its folder already existed with a wider mode (mkdir's and writeFile's modes
// apply only on creation). A folder is tightened only when it is the operator's own and not a shared
// one (a sticky folder such as /tmp is never touched).
import { chmodSync, mkdirSync, statSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'

export function writePrivate(file: string, data: string | Buffer): void {
  const dir = dirname(file)
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  tightenFolder(dir)
  writeFileSync(file, data, { mode: 0o600 })
  chmodSync(file, 0o600)
}

/** chmod 0700 a folder of ours that is wider (group or others may enter or read it). */
export function tightenFolder(dir: string): void {
  const s = statSync(dir)
  const mine = process.getuid === undefined || s.uid === process.getuid()
  if (mine && (s.mode & 0o1000) === 0 && (s.mode & 0o077) !== 0) chmodSync(dir, 0o700)
}
