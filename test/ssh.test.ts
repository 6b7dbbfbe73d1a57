import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { execFileSync } from 'node:child_process'
import { commandLine, pipeline, shQuote, Ssh } from '../lib/ssh.ts'
import { DrError } from '../lib/errors.ts'

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

test.run()
