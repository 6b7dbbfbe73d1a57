// Files only the operator may read: reports, state copies, import skeletons. Folders 0700, files 0600,
// also when the file already existed with a wider mode (writeFile's mode applies only on creation).
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'

export function writePrivate(file: string, data: string | Buffer): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 })
  writeFileSync(file, data, { mode: 0o600 })
  chmodSync(file, 0o600)
}
