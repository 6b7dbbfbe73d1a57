// Faults a test injects into the simulated node: $HDR_LAB_DIR/pve/faults.json (written by
// test/lab/node.ts setFault, gone with the next reset). Not part of Proxmox VE: the lab's way to make
// the node fail at one precise point, the way a real node fails (a dropped SSH session, …).
import fs from 'node:fs'
import path from 'node:path'
import { pveDir } from './state.mjs'

/** The fault set for this point, e.g. fault('qmrestore') → 'ssh-lost', or undefined. */
export function fault(point) {
  try { return JSON.parse(fs.readFileSync(path.join(pveDir, 'faults.json'), 'utf8'))[point] } catch { return undefined }
}

/**
 * The SSH session running this command dies (sshd killed, as by the OOM killer or a network drop that
 * resets the connection): SIGKILL to the nearest sshd ancestor. The command goes on, as a process
 * without a terminal does when its sshd dies; its output has nowhere to go (EPIPE is ignored).
 */
export function dropSshSession() {
  for (const s of [process.stdout, process.stderr]) s.on('error', () => {})
  let pid = process.ppid
  for (let i = 0; i < 10 && pid > 1; i++) {
    let comm = '', ppid = 0
    try {
      comm = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim()
      ppid = Number(fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[1])
    } catch { return }
    if (comm.startsWith('sshd')) { try { process.kill(pid, 'SIGKILL') } catch {} return }
    pid = ppid
  }
}
