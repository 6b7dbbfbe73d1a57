import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { execFileSync } from 'node:child_process'
import { commandLine, pipeline, shQuote, Ssh } from '../lib/ssh.ts'
import { DrError } from '../lib/errors.ts'
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { labEnv, labUp, LAB_DIR } from './lab/lab.ts'
import { calls, lock, reset } from './lab/node.ts'

test('shQuote: plain words stay, everything else is one single-quoted word', () => {
  assert.is(shQuote('local:backup/vzdump-qemu-101-2026_02_01-03_00_02.vma.zst'), 'local:backup/vzdump-qemu-101-2026_02_01-03_00_02.vma.zst')
  assert.is(shQuote('a b'), "'a b'")
  assert.is(shQuote("it's"), `'it'\\''s'`)
  assert.is(shQuote(''), "''")
  assert.is(shQuote('$(reboot)'), "'$(reboot)'")
})

test('a quoted argv reaches a POSIX shell as exactly the same words', () => {
  const nasty = ['; touch /tmp/hdr-x', "it's", '$(id)', '`id`', 'a\nb', '*', '"q"', '\\', '-rf', '--force 1', '#x']
  const out = execFileSync('bash', ['-c', `printf '%s\\0' ${commandLine(nasty)}`], { encoding: 'utf8' })
  assert.equal(out.split('\0').slice(0, -1), nasty)
})

test('pipeline: pipefail, each stage quoted', () => {
  assert.is(pipeline(['zstd', '-q', '-d', '-c', '/d/a b.vma.zst'], ['vma', 'verify', '-']), "set -o pipefail; zstd -q -d -c '/d/a b.vma.zst' | vma verify -")
})

test('a host or user that could be read as an ssh option is refused', () => {
  for (const t of [{ host: '-oProxyCommand=x', user: 'root' }, { host: 'pve', user: '-l' }, { host: 'pve;id', user: 'root' }]) {
    assert.throws(() => new Ssh({ name: 'pve', port: 22, ...t }), (e: unknown) => e instanceof DrError && e.exitCode === 2)
  }
})

test('EC-1 unreachable node: the sentence, the advice, exit 4', async () => {
  const ssh = new Ssh({ name: 'pve', host: '127.0.0.9', port: 1, user: 'root' })
  try {
    await ssh.connect()
    assert.unreachable('connected to a closed port')
  } catch (e) {
    assert.instance(e, DrError)
    const err = e as DrError
    assert.is(err.exitCode, 4)
    assert.match(err.message, /^Cannot reach Proxmox node 'pve' over SSH \(root@127\.0\.0\.9:1\): .*Connection refused\.$/)
    assert.is(err.hint, 'Check the network connection to the node (ping 127.0.0.9), that sshd runs there, and that your key is loaded: ssh -p 1 root@127.0.0.9 hostname')
  } finally {
    await ssh.close()
  }
})

const pve = () => new Ssh({ name: 'pve', host: '127.0.0.2', port: 2222, user: 'root' })

test('an argument containing `; touch /tmp/x` reaches the node as one literal argument', async () => {
  await lock(LAB_DIR)
  await labUp(['node'])
  await reset(LAB_DIR)
  process.env.HDR_SSH_CONFIG = labEnv().HDR_SSH_CONFIG
  rmSync('/tmp/hdr-inject', { force: true })
  const ssh = pve()
  try {
    await ssh.connect()
    const evil = '101; touch /tmp/hdr-inject'
    const r = await ssh.run(['qm', 'status', evil])
    assert.is.not(r.exitCode, 0)
    assert.ok(!existsSync('/tmp/hdr-inject'), 'the remote shell ran the injected command')
    const seen = calls(LAB_DIR).map((c) => c.argv)
    assert.ok(seen.some((argv) => JSON.stringify(argv.slice(-2)) === JSON.stringify(['status', evil])), JSON.stringify(seen))
  } finally {
    await ssh.close()
  }
})

test('one multiplexed SSH connection carries every command of a run', async () => {
  const log = join(LAB_DIR, 'node', 'sshd.log')
  const accepted = () => (readFileSync(log, 'utf8').match(/Accepted publickey/g) ?? []).length
  const before = accepted()
  const ssh = pve()
  try {
    await ssh.connect()
    for (let i = 0; i < 5; i++) assert.match((await ssh.run(['qm', 'status', '101'])).stdout, /^status: (running|stopped)\n$/)
    assert.is(ssh.commands, 6)
  } finally {
    await ssh.close()
  }
  assert.is(accepted() - before, 1)
})

test('runBatch: several argvs in one round trip, each with its own stdout, stderr and exit code, each argument literal', async () => {
  rmSync('/tmp/hdr-inject', { force: true })
  const ssh = pve()
  try {
    await ssh.connect()
    const evil = '101; touch /tmp/hdr-inject'
    const [a, b, c, d] = await ssh.runBatch([
      ['printf', '%s\\n', 'two words', "it's"],
      ['qm', 'status', evil],
      ['sh', '-c', 'printf out; echo err >&2; exit 3'],
      ['qm', 'status', '101'],
    ])
    assert.equal([a!.exitCode, a!.stdout, a!.stderr], [0, "two words\nit's\n", ''])
    assert.is.not(b!.exitCode, 0)
    assert.is(b!.stdout, '')
    assert.match(b!.stderr, "vmid: type check ('integer') failed - got '101; touch /tmp/hdr-inject'")
    assert.equal([c!.exitCode, c!.stdout, c!.stderr], [3, 'out', 'err\n'])
    assert.match(d!.stdout, /^status: (running|stopped)\n$/)
    assert.is(d!.exitCode, 0)
    assert.is(ssh.commands, 2)
    assert.ok(!existsSync('/tmp/hdr-inject'), 'the remote shell ran the injected command')
  } finally {
    await ssh.close()
  }
})

test.run()
