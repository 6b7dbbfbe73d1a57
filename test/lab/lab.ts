// The lab, as one thing: `npm run lab:up` / `npm run lab:down` (both idempotent), and the
// environment a test gives a script so that it talks to the lab. Parts: docs/lab.md.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as node from './node.ts'
import * as s3 from './s3.ts'
import * as monitoring from './monitoring.ts'
import { spawnSync } from 'node:child_process'

export const ROOT = join(import.meta.dirname, '..', '..')
export const LAB_DIR = process.env.HDR_LAB_DIR ?? '/tmp/hdr-lab'
export const FIXTURE = join(ROOT, 'test', 'fixtures', 'homelab')

export type Part = 'node' | 's3' | 'monitoring'
const parts = { node, s3, monitoring } as const
const ALL: Part[] = ['node', 's3', 'monitoring']

export async function labUp(which: Part[] = ALL): Promise<void> {
  await node.lock(LAB_DIR) // one user of the lab at a time; held until this process exits
  await switchCheckout()
  // The node first: it creates the lab's ssh key that the other parts authorize.
  for (const p of ALL) if (which.includes(p)) await parts[p].up(LAB_DIR)
}

/**
 * The lab runs programs from the checkout that started it (the simulator on the node's PATH, the
 * docker simulator, the Grafana stand-in, the hooks). When another checkout of the repo (a git
 * worktree) takes the lab, stop those parts and reseed the node, so that its own code answers.
 */
async function switchCheckout(): Promise<void> {
  const mark = join(LAB_DIR, 'checkout')
  const last = existsSync(mark) ? readFileSync(mark, 'utf8') : undefined
  if (last !== undefined && last !== ROOT) {
    await node.down(LAB_DIR)
    await monitoring.down(LAB_DIR)
    rmSync(join(LAB_DIR, 'pve'), { recursive: true, force: true })
  }
  mkdirSync(LAB_DIR, { recursive: true })
  writeFileSync(mark, ROOT)
}

export async function labDown(which: Part[] = ALL): Promise<void> {
  for (const p of [...ALL].reverse()) if (which.includes(p)) await parts[p].down(LAB_DIR)
}

/** What a script needs in its environment to work against the lab. */
export function labEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    HDR_LAB_DIR: LAB_DIR,
    HDR_SSH_CONFIG: join(LAB_DIR, 'ssh', 'config'),
    HOMELAB_TF_DIR: FIXTURE,
    CHECKPOINT_DISABLE: '1',
    TF_CLI_CONFIG_FILE: '/dev/null',
    TF_IN_AUTOMATION: '1',
    NO_COLOR: '1',
    ...extra,
  }
}

/** For trying tasks by hand: the fixture's prod environment applied, so its state exists in S3. */
function applyProd(): void {
  const dir = join(FIXTURE, 'environments', 'prod')
  const env = s3.terraformEnv(LAB_DIR, 'prod')
  for (const args of [['init', '-input=false'], ['apply', '-auto-approve', '-input=false']]) {
    const r = spawnSync('terraform', [`-chdir=${dir}`, ...args], { env, encoding: 'utf8' })
    if (r.status !== 0) throw new Error(`terraform ${args[0]} in ${dir} failed: ${r.stderr}`)
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [cmd, ...rest] = process.argv.slice(2)
  const which = (rest.length ? rest : ALL) as Part[]
  const t0 = Date.now()
  if (cmd === 'up') {
    await labUp(which)
    if (which.includes('s3')) applyProd()
  }
  else if (cmd === 'down') await labDown(which)
  else if (cmd === 'reset') await node.reset(LAB_DIR)
  else {
    process.stderr.write('usage: lab.ts up|down|reset [node|s3|monitoring…]\n')
    process.exit(2)
  }
  process.stdout.write(`lab ${cmd} (${which.join(', ')}) in ${((Date.now() - t0) / 1000).toFixed(1)}s — state in ${LAB_DIR}\n`)
}
