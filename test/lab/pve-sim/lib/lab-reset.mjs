// Lab-internal (not a Proxmox command): bring every guest's network presence in line with the
// run state after node.ts reset() copied the fixture in — tear down all hdr-g* netns, then start
// the netns of each guest marked running (bound guests are left to their own lab service).
import fs from 'node:fs'
import { listGuests, loadConf, getRun, guestBind } from './state.mjs'
import { guestUp, guestNetDown } from './guest.mjs'

const keep = process.argv.includes('--down-only')
let names = []
try { names = fs.readdirSync('/run/netns') } catch {}
for (const n of names) { const m = /^hdr-g(\d+)$/.exec(n); if (m) guestNetDown(Number(m[1])) }
if (!keep) {
  for (const { vmid, type } of listGuests()) {
    const conf = loadConf(type, vmid)
    if (getRun(vmid).running && !guestBind(conf, vmid)) guestUp(type, vmid, conf)
  }
}
