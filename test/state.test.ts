// lib/state.ts on real state files: the sample is what terraform 1.11.4 wrote for the fixture's prod
// environment (type annotations trimmed); the others are derived from it the way terraform would.
//   node --import tsx test/state.test.ts
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tempDir } from './tmp.ts'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  configResources, describeDiff, diffStates, importsSkeleton, instanceAddresses, localCopies, lockKey, mirrorDir, mirrorState,
  parseState, rollForward, stateKey, tryParseState, type TfState,
} from '../lib/state.ts'
import { parsePlan, overrideText, readOverride } from '../lib/terraform.ts'

const REAL = `{"version":4,"terraform_version":"1.11.4","serial":7,"lineage":"0bf291d7-feee-8a41-ae9d-ee69a1d00f75","outputs":{"guests":{"value":{"dns01":{"ip":"10.251.0.102","name":"dns01","node":"pve","vmid":102},"web01":{"ip":"10.251.0.101","name":"web01","node":"pve","vmid":101}}}},"resources":[{"mode":"managed","type":"terraform_data","name":"dns01","provider":"provider[\\"terraform.io/builtin/terraform\\"]","instances":[{"schema_version":0,"attributes":{"id":"4551c249-1d74-e74d-2d8f-5db2105f19a8","input":{"value":{"ip":"10.251.0.102","name":"dns01","node":"pve","vmid":102}},"output":{"value":{"ip":"10.251.0.102","name":"dns01","node":"pve","vmid":102}}},"sensitive_attributes":[]}]},{"mode":"managed","type":"terraform_data","name":"web01","provider":"provider[\\"terraform.io/builtin/terraform\\"]","instances":[{"schema_version":0,"attributes":{"id":"038b2be2-f3a4-b649-5861-71336edc7c25","input":{"value":{"ip":"10.251.0.101","name":"web01","node":"pve","vmid":101}},"output":{"value":{"ip":"10.251.0.101","name":"web01","node":"pve","vmid":101}}},"sensitive_attributes":[]}]}],"check_results":null}`
const real = (): TfState => parseState(REAL, 'sample')
const clone = (s: TfState): TfState => JSON.parse(JSON.stringify(s)) as TfState

test('parseState reads a real terraform 1.11 state: serial, lineage, resources', () => {
  const s = real()
  assert.is(s.serial, 7)
  assert.is(s.lineage, '0bf291d7-feee-8a41-ae9d-ee69a1d00f75')
  assert.is(s.terraform_version, '1.11.4')
  assert.equal(instanceAddresses(s), ['terraform_data.dns01', 'terraform_data.web01'])
})

test('tryParseState refuses what is not a state, saying why', () => {
  const reason = (t: string) => { const r = tryParseState(t); return r.ok ? 'ok' : r.reason }
  assert.is(reason(''), 'empty file')
  assert.match(reason('{"version":4,'), /^not JSON/)
  assert.is(reason('[]'), 'not a JSON object')
  assert.is(reason('{"version":3,"serial":1,"lineage":"x"}'), 'state format version 3, expected 4')
  assert.is(reason('{"version":4,"lineage":"x"}'), 'no valid serial')
  assert.is(reason('{"version":4,"serial":1}'), 'no lineage')
  assert.is(reason('{"version":4,"serial":1,"lineage":"x","resources":[{"type":"a"}]}'), 'a resource lacks type, name or instances')
  assert.is(reason('{"version":4,"serial":0,"lineage":"x"}'), 'ok') // a fresh empty state
  assert.throws(() => parseState('nope', 'Version abc'), /^Version abc is not a valid Terraform state: not JSON/)
})

test('instanceAddresses: modules, data sources, count and for_each keys as terraform prints them', () => {
  const s = clone(real())
  s.resources.push(
    { module: 'module.net', mode: 'managed', type: 'terraform_data', name: 'vlan', instances: [{ index_key: 0 }, { index_key: 1 }] },
    { mode: 'data', type: 'terraform_remote_state', name: 'core', instances: [{}] },
    { mode: 'managed', type: 'terraform_data', name: 'vm', instances: [{ index_key: 'web' }] },
  )
  assert.equal(instanceAddresses(s), [
    'data.terraform_remote_state.core', 'module.net.terraform_data.vlan[0]', 'module.net.terraform_data.vlan[1]',
    'terraform_data.dns01', 'terraform_data.vm["web"]', 'terraform_data.web01',
  ])
})

test('diffStates: added, removed, changed by address; serial and lineage; attribute order does not matter', () => {
  const cur = real()
  const old = clone(cur)
  old.serial = 4
  old.resources = old.resources.filter((r) => r.name !== 'dns01')
  old.resources.push({ mode: 'managed', type: 'terraform_data', name: 'db01', instances: [{ attributes: { id: 'x' } }] })
  const web = old.resources.find((r) => r.name === 'web01')!.instances[0]!
  web.attributes = { ...web.attributes, id: 'another-id' }
  const d = diffStates(cur, old)
  assert.equal(d.added, ['terraform_data.db01'])
  assert.equal(d.removed, ['terraform_data.dns01'])
  assert.equal(d.changed, ['terraform_data.web01'])
  assert.equal(d.serial, [7, 4])
  assert.equal(describeDiff(d, 8), [
    '+ terraform_data.db01  (back in the state)',
    '- terraform_data.dns01  (no longer in the state)',
    '~ terraform_data.web01  (attributes differ)',
    'serial: 7 now; the restored copy is serial 4, written as 8',
    'lineage: 0bf291d7-feee-8a41-ae9d-ee69a1d00f75 (unchanged)',
  ])
  const reordered = clone(cur)
  const attrs = reordered.resources[0]!.instances[0]!.attributes!
  reordered.resources[0]!.instances[0]!.attributes = Object.fromEntries(Object.entries(attrs).reverse())
  assert.equal(diffStates(cur, reordered).changed, [])
  const other = clone(cur)
  other.lineage = 'ffffffff-0000-0000-0000-000000000000'
  assert.is(describeDiff(diffStates(cur, other), 8).at(-1), 'lineage: 0bf291d7-feee-8a41-ae9d-ee69a1d00f75 -> ffffffff-0000-0000-0000-000000000000 (CHANGES: a different state history)')
})

test('rollForward: serial above both, lineage and content kept, terraform layout', () => {
  const old = clone(real())
  old.serial = 3
  const r = rollForward(old, 9)
  assert.is(r.serial, 10)
  const back = parseState(r.text, 'rolled')
  assert.is(back.serial, 10)
  assert.is(back.lineage, old.lineage)
  assert.equal(back.resources, old.resources)
  assert.ok(r.text.startsWith('{\n  "version": 4,\n  "terraform_version": "1.11.4",\n  "serial": 10,'))
  assert.ok(r.text.endsWith('}\n'))
  assert.is(rollForward(old, undefined).serial, 4) // no current state (a delete marker)
  assert.is(rollForward(clone(real()), 2).serial, 8) // an old copy with a higher serial still goes up
})

test('stateKey and lockKey follow the s3 backend (backend_state.go path())', () => {
  assert.is(stateKey('prod/terraform.tfstate', undefined), 'prod/terraform.tfstate')
  assert.is(stateKey('prod/terraform.tfstate', 'default'), 'prod/terraform.tfstate')
  assert.is(stateKey('prod/terraform.tfstate', 'dev'), 'env:/dev/prod/terraform.tfstate')
  assert.is(stateKey('prod/terraform.tfstate', 'dev', 'workspaces'), 'workspaces/dev/prod/terraform.tfstate')
  assert.is(lockKey('prod/terraform.tfstate'), 'prod/terraform.tfstate.tflock')
})

test('mirror: <serial>.tfstate mode 0600, never overwritten with other content, newest serial first', () => {
  process.env.HDR_STATE_DIR = tempDir('hdr-state-unit-')
  const s = real()
  const a = mirrorState('prod', undefined, REAL, s)
  assert.is(a.file, join(process.env.HDR_STATE_DIR, 'prod', '7.tfstate'))
  assert.ok(a.created)
  assert.is(statSync(a.file).mode & 0o777, 0o600)
  assert.is(statSync(mirrorDir('prod')).mode & 0o777, 0o700)
  assert.not.ok(mirrorState('prod', undefined, REAL, s).created)
  const changed = REAL.replace('10.251.0.101', '10.251.0.199')
  const b = mirrorState('prod', undefined, changed, parseState(changed, 'x'))
  assert.match(b.file, /\/7\.[0-9a-f]{8}\.tfstate$/)
  assert.is(readFileSync(a.file, 'utf8'), REAL)
  const newer = JSON.stringify({ ...s, serial: 9 })
  mirrorState('prod', undefined, newer, parseState(newer, 'x'))
  writeFileSync(join(mirrorDir('prod'), '8.tfstate'), 'not json')
  assert.equal(localCopies('prod').map((c) => c.state.serial), [9, 7, 7])
  assert.is(mirrorDir('prod', 'dev'), join(process.env.HDR_STATE_DIR, 'prod', 'workspaces', 'dev'))
  assert.equal(localCopies('nothing'), [])
  assert.equal(readdirSync(mirrorDir('prod')).length, 4)
})

test('EC-5 imports.tf skeleton: one import block per resource in the fixture configuration', async () => {
  const resources = await configResources(join(import.meta.dirname, 'fixtures', 'homelab', 'environments', 'prod'))
  assert.equal(resources.map((r) => r.address), ['terraform_data.dns01', 'terraform_data.web01']) // hcl2json sorts blocks by name
  const text = importsSkeleton('prod', resources, new Date('2026-02-01T10:00:00Z'))
  assert.ok(text.startsWith("# imports.tf for environment 'prod', generated by homelab-dr restore:state on 2026-02-01T10:00:00.000Z.\n"))
  assert.ok(text.includes('import {\n  to = terraform_data.web01\n  id = "" # TODO: the real id of this resource\n}\n'))
  assert.ok(text.includes('import {\n  to = terraform_data.dns01\n'))
  const counted = importsSkeleton('x', [{ address: 'terraform_data.vm', repeated: 'count', file: 'main.tf' }])
  assert.ok(counted.includes('# terraform_data.vm uses count: write one block per instance, e.g. to = terraform_data.vm[0]'))
})

test('parsePlan: summary and addresses from real terraform plan output', () => {
  const out = `Terraform will perform the following actions:

  # terraform_data.db01 will be destroyed
  # (because terraform_data.db01 is not in configuration)
  - resource "terraform_data" "db01" {
      - id = "a" -> null
    }

  # terraform_data.web01 must be replaced
-/+ resource "terraform_data" "web01" {

Plan: 1 to add, 0 to change, 2 to destroy.
`
  assert.equal(parsePlan(out, 2), { exitCode: 2, summary: 'Plan: 1 to add, 0 to change, 2 to destroy.', changes: ['terraform_data.db01 will be destroyed', 'terraform_data.web01 must be replaced'] })
  assert.equal(parsePlan('\nNo changes. Your infrastructure matches the configuration.\n', 0), { exitCode: 0, summary: 'No changes.', changes: [] })
})

test('backend_override.tf: ours is recognised with its path; a foreign one is not ours', () => {
  const dir = tempDir('hdr-override-')
  assert.equal(readOverride(dir), { state: 'absent' })
  writeFileSync(join(dir, 'backend_override.tf'), overrideText('prod', { path: '/x/y "z".tfstate' }))
  assert.equal(readOverride(dir), { state: 'ours', file: join(dir, 'backend_override.tf'), path: '/x/y "z".tfstate' })
  writeFileSync(join(dir, 'backend_override.tf'), 'terraform {}\n')
  assert.equal(readOverride(dir), { state: 'foreign', file: join(dir, 'backend_override.tf') })
})

test.run()
