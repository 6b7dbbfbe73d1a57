// The lab's S3 behaves like the versioned MinIO the restore scripts talk to.
//   node --import tsx test/lab/s3.test.ts
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import {
  CopyObjectCommand, DeleteObjectCommand, GetObjectCommand, HeadBucketCommand, ListBucketsCommand,
  ListObjectVersionsCommand, PutObjectCommand,
} from '@aws-sdk/client-s3'
import * as s3lab from './s3.ts'

const labDir = s3lab.defaultLabDir()
const s3 = s3lab.s3Client()
const key = `s3-test/${process.pid}/terraform.tfstate`
const body = async (Bucket: string, Key: string, VersionId?: string): Promise<string> =>
  await (await s3.send(new GetObjectCommand({ Bucket, Key, VersionId }))).Body?.transformToString() ?? ''

test.before(async () => { await s3lab.up(labDir) })
test.after(() => { s3.destroy() })

test('both buckets exist with versioning enabled', async () => {
  const { Buckets } = await s3.send(new ListBucketsCommand({}))
  const names = (Buckets ?? []).map(b => b.Name).sort()
  assert.equal(names, ['backups', 'tfstate'])
})

test('a bucket keeps every version; a delete adds a marker and keeps them', async () => {
  const ids: string[] = []
  for (const n of [1, 2, 3]) {
    const r = await s3.send(new PutObjectCommand({ Bucket: 'tfstate', Key: key, Body: `{"serial":${n}}`, ContentType: 'application/json' }))
    assert.ok(r.VersionId, 'PutObject returns a VersionId')
    ids.push(r.VersionId ?? '')
  }
  const listed = await s3.send(new ListObjectVersionsCommand({ Bucket: 'tfstate', Prefix: key }))
  const versions = listed.Versions ?? []
  assert.is(versions.length, 3)
  assert.equal(new Set(versions.map(v => v.VersionId)).size, 3)
  assert.equal(versions.map(v => v.VersionId).sort(), [...ids].sort())
  for (const [i, id] of ids.entries()) assert.is(await body('tfstate', key, id), `{"serial":${i + 1}}`)
  assert.is(versions.find(v => v.IsLatest)?.VersionId, ids[2])

  await s3.send(new DeleteObjectCommand({ Bucket: 'tfstate', Key: key }))
  const after = await s3.send(new ListObjectVersionsCommand({ Bucket: 'tfstate', Prefix: key }))
  assert.is(after.Versions?.length, 3)
  assert.is(after.DeleteMarkers?.length, 1)
  assert.ok(after.DeleteMarkers?.[0]?.IsLatest)
  assert.is(await body('tfstate', key, ids[0]), '{"serial":1}')
})

test('RGW differs from MinIO: CopyObject returns no VersionId, the copy is still a new version', async () => {
  const k = `${key}.copy`
  const first = await s3.send(new PutObjectCommand({ Bucket: 'tfstate', Key: k, Body: 'old' }))
  await s3.send(new PutObjectCommand({ Bucket: 'tfstate', Key: k, Body: 'new' }))
  const copy = await s3.send(new CopyObjectCommand({ Bucket: 'tfstate', Key: k, CopySource: `tfstate/${k}?versionId=${first.VersionId}` }))
  assert.is(copy.VersionId, undefined)
  assert.is(await body('tfstate', k), 'old')
  assert.is((await s3.send(new ListObjectVersionsCommand({ Bucket: 'tfstate', Prefix: k }))).Versions?.length, 3)
})

test('RGW differs from MinIO: If-None-Match: * is not enforced on a versioned bucket', async () => {
  const k = `${key}.tflock`
  await s3.send(new PutObjectCommand({ Bucket: 'tfstate', Key: k, Body: 'a', IfNoneMatch: '*' }))
  const second = await s3.send(new PutObjectCommand({ Bucket: 'tfstate', Key: k, Body: 'b', IfNoneMatch: '*' }))
  assert.ok(second.VersionId) // MinIO would answer 412 PreconditionFailed
})

test('stop makes the endpoint unreachable, start brings it back with the data intact', async () => {
  const k = `${key}.persist`
  await s3.send(new PutObjectCommand({ Bucket: 'backups', Key: k, Body: 'kept' }))
  await s3lab.stop(labDir)
  assert.is(await s3lab.reachable(), false)
  const err = await s3.send(new ListBucketsCommand({})).then(() => undefined, (e: unknown) => e)
  assert.ok(err instanceof Error, 'an S3 call fails while stopped')
  await s3lab.stop(labDir) // idempotent
  await s3lab.start(labDir)
  await s3lab.start(labDir)
  assert.is(await s3lab.reachable(), true)
  assert.is(await body('backups', k), 'kept')
})

test('wipe empties the server (no buckets, no versions) and up restores the buckets', async () => {
  await s3.send(new PutObjectCommand({ Bucket: 'tfstate', Key: `${key}.wipe`, Body: 'x' }))
  await s3lab.wipe(labDir)
  assert.is(await s3lab.reachable(), true, 'the server keeps running')
  const { Buckets } = await s3.send(new ListBucketsCommand({}))
  assert.is(Buckets?.length ?? 0, 0)
  const head = await s3.send(new HeadBucketCommand({ Bucket: 'tfstate' })).then(() => 'exists', (e: Error) => e.name)
  assert.is(head, 'NotFound')
  await s3lab.up(labDir)
  const again = await s3.send(new ListObjectVersionsCommand({ Bucket: 'tfstate' }))
  assert.is(again.Versions?.length ?? 0, 0)
  assert.is(again.DeleteMarkers?.length ?? 0, 0)
})

test.run()
