// lib/output.ts: control characters from outside never reach the terminal or a report raw (issue 12
// item 9); secrets are redacted before serialising and in their escaped, encoded and quoted forms (12).
//   node --import tsx test/output.test.ts
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { readFileSync } from 'node:fs'
import { cleanText, redact, registerSecret, say, serialise } from '../lib/output.ts'
import { Report } from '../lib/report.ts'
import { tempDir } from './tmp.ts'

function capture(fn: () => void): string {
  const write = process.stdout.write.bind(process.stdout)
  let out = ''
  process.stdout.write = ((chunk: string) => ((out += chunk), true)) as typeof process.stdout.write
  try {
    fn()
  } finally {
    process.stdout.write = write
  }
  return out
}

const SECRET = `s3"cr\\et'pa ss&/=`
registerSecret(SECRET)

test('a secret with " and \\ is redacted in --json and report documents (before serialising)', () => {
  const text = serialise({ error: `login failed for ${SECRET}`, [SECRET]: 1 })
  assert.not.ok(text.includes('cr'), text)
  assert.equal(JSON.parse(text), { error: 'login failed for ***', '***': 1 })
})

test('a secret is redacted in its JSON-escaped, URL-encoded and shell-quoted forms in text', () => {
  for (const form of [JSON.stringify(SECRET).slice(1, -1), encodeURIComponent(SECRET), SECRET.replace(/'/g, `'\\''`)]) {
    assert.is(redact(`before ${form} after`), 'before *** after', form)
  }
})

test('control characters from a node or S3 are removed (escape sequences) or shown as ? at output', () => {
  const hostile = 'web01\x1b[2J\x1b]0;pwned\x07\rnote\x00\x9b31m\u2028end'
  assert.is(cleanText(hostile), 'web01?note??end') // \r, \0 and U+2028 shown; the CSI/OSC sequences gone
  const out = capture(() => say(`✓ VM 101 (${hostile})`))
  assert.not.match(out, /[\x00-\x08\x0b-\x1f\x7f-\x9f]/)
  assert.ok(out.startsWith('✓ VM 101 (web01'), out)
  assert.is(cleanText('tabs\tand\nnewlines stay'), 'tabs\tand\nnewlines stay')
})

test('a report file carries no control character and no secret from its facts', () => {
  process.env.HDR_REPORTS_DIR = tempDir('hdr-out-')
  const r = new Report('verify:backups')
  r.facts.note = `backup note \x9b2J\x1b[31mred ${SECRET}`
  capture(() => r.finish({ exitCode: 0, summary: 'ok' }))
  const text = readFileSync(r.file!, 'utf8')
  assert.is(JSON.parse(text).facts.note, 'backup note red ***')
  assert.not.match(text, /[\x7f-\x9f]|\\u001b|\\u009b/)
})

test.run()
