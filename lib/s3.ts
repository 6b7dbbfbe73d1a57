// Talking to the operator's S3 (MinIO, or the lab's Ceph RGW) with @aws-sdk/client-s3: one client
// factory with short timeouts (so "S3 down" is known in seconds), a request counter, and the few calls
// restore:state needs. Errors are turned into one sentence each; the secret key is never printed.
//
// Bounded time: every call goes through send(), which gives the SDK an AbortSignal and races it against
// a deadline, and the HTTP handler throws on its request timeout (by default it only logs a warning and
// waits forever on a server that accepts TCP and never answers). A call that runs out of time fails
// with "MinIO at X did not answer in N s", classified 'unreachable' (exit 4, fallback offered).
//
// Portability (measured on the lab's RGW, documented for MinIO): CopyObject may return no VersionId and
// If-None-Match may not be enforced, so nothing here relies on either; writes are PutObject, and the
// version a write created is read back from the PutObject answer or a HeadObject.
import type { S3Client } from '@aws-sdk/client-s3'
import { DrError } from './errors.ts'
import { registerSecret } from './output.ts'

export interface S3Settings {
  endpoint: string
  accessKey: string
  secretKey: string
  region?: string
  /** Per-request connect and response timeout (default 3000 ms). */
  timeoutMs?: number
  /** The whole call's deadline, retries and body included (default 2 × timeoutMs + 1 s). */
  callTimeoutMs?: number
}

// The SDK is loaded on first use (~100 ms): --help and the tasks' node-only paths stay fast.
type Sdk = typeof import('@aws-sdk/client-s3')

export interface S3 {
  client: S3Client
  sdk: Sdk
  endpoint: string
  /** HTTP requests sent so far (retries included): the benchmark's counter. */
  requests(): number
  /** The deadline of one call (send), in ms. */
  callTimeoutMs: number
  /** Why the last probe() failed, for notAnswering(). */
  lastFailure?: unknown
  close(): void
}

/** An S3 call that ran out of time: the server accepted (or not) but did not answer. */
export class S3TimeoutError extends Error {
  override readonly name = 'TimeoutError'
  readonly seconds: number
  constructor(endpoint: string, seconds: number) {
    super(`MinIO at ${endpoint} did not answer in ${seconds} s`)
    this.seconds = seconds
  }
}

export interface ObjectVersion {
  versionId: string
  lastModified: Date
  size: number
  isLatest: boolean
  deleteMarker: boolean
  etag?: string
}

// The SDK warns on every run that Node 20 support ends in 2027: noise for the operator.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'

export async function openS3(s: S3Settings): Promise<S3> {
  registerSecret(s.secretKey)
  const sdk = await import('@aws-sdk/client-s3')
  const timeout = s.timeoutMs ?? 3000
  const client = new sdk.S3Client({
    endpoint: s.endpoint,
    region: s.region ?? 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: s.accessKey, secretAccessKey: s.secretKey },
    // RGW answers the default checksum trailer with HTTP 411; MinIO accepts both.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 2,
    // throwOnRequestTimeout: without it @smithy's handler only logs when requestTimeout passes.
    requestHandler: { connectionTimeout: timeout, requestTimeout: timeout, throwOnRequestTimeout: true },
  })
  let count = 0
  // In the deserialize step, under the retry middleware: one call per HTTP attempt.
  client.middlewareStack.add((next) => async (args) => {
    count++
    return next(args)
  }, { step: 'deserialize', name: 'hdrRequestCounter' })
  const callTimeoutMs = s.callTimeoutMs ?? 2 * timeout + 1000
  return { client, sdk, endpoint: s.endpoint, requests: () => count, callTimeoutMs, close: () => client.destroy() }
}

/**
 * Runs one S3 call (the SDK request and reading its body) within s3.callTimeoutMs: the signal is given
 * to the SDK, and the race guarantees the answer even if a stream ignores it. Every call in this module
 * goes through here; code elsewhere that needs another S3 command should too.
 */
export async function send<T>(s3: S3, call: (abortSignal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController()
  const t0 = performance.now()
  const timedOut = () => new S3TimeoutError(s3.endpoint, Math.max(1, Math.round((performance.now() - t0) / 1000)))
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const e = timedOut()
      ac.abort(e)
      reject(e)
    }, s3.callTimeoutMs)
  })
  try {
    return await Promise.race([call(ac.signal), deadline])
  } catch (e) {
    // The handler's own TimeoutError (ETIMEDOUT on a silent socket) reads the same as the deadline.
    if (e instanceof S3TimeoutError || (e as { name?: string })?.name === 'TimeoutError') throw e instanceof S3TimeoutError ? e : timedOut()
    throw e
  } finally {
    clearTimeout(timer)
  }
}

/** Why an S3 call failed, as one of a few kinds the scripts act on. */
export type S3FailureKind = 'unreachable' | 'credentials' | 'no-bucket' | 'not-found' | 'bad-version' | 'other'

export function classify(e: unknown): S3FailureKind {
  const err = e as { name?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number } }
  const name = err?.name ?? ''
  const status = err?.$metadata?.httpStatusCode
  const text = `${name} ${err?.code ?? ''} ${err?.message ?? ''}`
  if (/ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|TimeoutError|socket hang up|timed? ?out/i.test(text)) return 'unreachable'
  if (/InvalidAccessKeyId|SignatureDoesNotMatch|AccessDenied|InvalidToken|Forbidden/.test(name) || status === 403) return 'credentials'
  if (name === 'NoSuchBucket') return 'no-bucket'
  if (name === 'NoSuchVersion' || (name === 'InvalidArgument' && /version/i.test(text))) return 'bad-version'
  if (name === 'NoSuchKey' || name === 'NotFound' || status === 404) return 'not-found'
  if (status === 400 && /version/i.test(text)) return 'bad-version'
  return 'other'
}

/** An S3 failure as the one sentence the operator reads (never the secret). */
export function s3Error(e: unknown, s3: S3, what: string): DrError {
  const kind = classify(e)
  const name = (e as { name?: string })?.name ?? 'Error'
  switch (kind) {
    case 'unreachable':
      return new DrError('prerequisites', `${notAnswering(s3, e)} (${what}).`, 'Check that MinIO is running, or use `restore:state fallback` to work from the local copy.')
    case 'credentials':
      return new DrError('prerequisites', `S3 at ${s3.endpoint} refused the credentials (${name}) while ${what}.`, 'Check minio_root_user / minio_root_password in terraform.tfvars, or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.')
    case 'no-bucket':
      return new DrError('prerequisites', `S3 at ${s3.endpoint} has no such bucket (${what}).`, 'Check the backend block; if MinIO was rebuilt empty, see docs/restore-state.md, "MinIO rebuilt empty".')
    default:
      return new DrError('failed', `S3 error while ${what}: ${name}: ${(e as Error)?.message ?? String(e)}`)
  }
}

/** The sentence for an S3 that does not answer: how long we waited when it hung, else that it refused. */
export function notAnswering(s3: S3, e?: unknown): string {
  const err = e ?? s3.lastFailure
  return err instanceof S3TimeoutError ? err.message : `S3 at ${s3.endpoint} does not answer`
}

/** 'up' when the endpoint answers with valid credentials, else the failure kind. Bucket is HEADed. */
export async function probe(s3: S3, bucket: string): Promise<'up' | S3FailureKind> {
  try {
    await send(s3, (abortSignal) => s3.client.send(new s3.sdk.HeadBucketCommand({ Bucket: bucket }), { abortSignal }))
    return 'up'
  } catch (e) {
    s3.lastFailure = e
    return classify(e)
  }
}

/** Every version and delete marker of exactly `key`, newest first. */
export async function listVersions(s3: S3, bucket: string, key: string): Promise<ObjectVersion[]> {
  const out: ObjectVersion[] = []
  let KeyMarker: string | undefined
  let VersionIdMarker: string | undefined
  for (;;) {
    const r = await send(s3, (abortSignal) => s3.client.send(new s3.sdk.ListObjectVersionsCommand({ Bucket: bucket, Prefix: key, KeyMarker, VersionIdMarker }), { abortSignal }))
    for (const v of r.Versions ?? []) {
      if (v.Key !== key || !v.VersionId) continue
      out.push({ versionId: v.VersionId, lastModified: v.LastModified ?? new Date(0), size: v.Size ?? 0, isLatest: v.IsLatest === true, deleteMarker: false, etag: v.ETag })
    }
    for (const m of r.DeleteMarkers ?? []) {
      if (m.Key !== key || !m.VersionId) continue
      out.push({ versionId: m.VersionId, lastModified: m.LastModified ?? new Date(0), size: 0, isLatest: m.IsLatest === true, deleteMarker: true })
    }
    if (!r.IsTruncated) break
    // Past our key: the rest of the listing is other keys sharing the prefix (e.g. <key>.tflock).
    if (r.NextKeyMarker !== key) break
    // A page that does not move the listing on would be asked for again forever (found by test/fuzz.test.ts).
    if (!r.NextVersionIdMarker || (KeyMarker === key && r.NextVersionIdMarker === VersionIdMarker)) {
      throw new DrError('failed', `The S3 server's listing of the versions of s3://${bucket}/${key} does not move on (it repeated its page after ${out.length} versions).`)
    }
    KeyMarker = r.NextKeyMarker
    VersionIdMarker = r.NextVersionIdMarker
  }
  // The server's order is newest first per key; sort anyway (the latest flag wins ties).
  return out.sort((a, b) => Number(b.isLatest) - Number(a.isLatest) || b.lastModified.getTime() - a.lastModified.getTime())
}

/** Every key under `prefix` (all pages), each call bounded like every other. */
export async function listKeys(s3: S3, bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = []
  let token: string | undefined
  do {
    const r = await send(s3, (abortSignal) => s3.client.send(new s3.sdk.ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }), { abortSignal }))
    for (const o of r.Contents ?? []) if (o.Key) keys.push(o.Key)
    const next = r.IsTruncated ? r.NextContinuationToken : undefined
    if (next !== undefined && next === token) throw new DrError('failed', `The S3 server's listing of s3://${bucket}/${prefix} does not move on (it repeated its page after ${keys.length} keys).`)
    token = next
  } while (token)
  return keys
}

/** The body of an object (a given version, or the current one) as text. */
export async function getText(s3: S3, bucket: string, key: string, versionId?: string): Promise<{ text: string; versionId: string | undefined; lastModified: Date | undefined }> {
  return send(s3, async (abortSignal) => {
    const r = await s3.client.send(new s3.sdk.GetObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }), { abortSignal })
    return { text: (await r.Body?.transformToString('utf8')) ?? '', versionId: r.VersionId, lastModified: r.LastModified }
  })
}

/** True when the object exists (its latest version is not a delete marker). */
export async function exists(s3: S3, bucket: string, key: string): Promise<boolean> {
  try {
    await send(s3, (abortSignal) => s3.client.send(new s3.sdk.HeadObjectCommand({ Bucket: bucket, Key: key }), { abortSignal }))
    return true
  } catch (e) {
    if (classify(e) === 'not-found') return false
    throw e
  }
}

/** Writes a new current version; returns its version id (from the answer, else from a HeadObject). */
export async function putText(s3: S3, bucket: string, key: string, text: string, contentType = 'application/json'): Promise<string | undefined> {
  const r = await send(s3, (abortSignal) => s3.client.send(new s3.sdk.PutObjectCommand({ Bucket: bucket, Key: key, Body: text, ContentType: contentType }), { abortSignal }))
  if (r.VersionId) return r.VersionId
  const h = await send(s3, (abortSignal) => s3.client.send(new s3.sdk.HeadObjectCommand({ Bucket: bucket, Key: key }), { abortSignal }))
  return h.VersionId
}

// ---- buckets (rebuild:minio) ----------------------------------------------------------------------

/** The names of every bucket the credentials can see. */
export async function listBuckets(s3: S3): Promise<string[]> {
  const r = await s3.client.send(new s3.sdk.ListBucketsCommand({}))
  return (r.Buckets ?? []).map((b) => b.Name ?? '').filter(Boolean).sort()
}

/** Creates a bucket; one that already exists and is ours is not an error. */
export async function createBucket(s3: S3, bucket: string): Promise<void> {
  try {
    await s3.client.send(new s3.sdk.CreateBucketCommand({ Bucket: bucket }))
  } catch (e) {
    if ((e as { name?: string })?.name !== 'BucketAlreadyOwnedByYou') throw e
  }
}

/** A bucket's versioning: 'Enabled', 'Suspended', or 'Off' (never enabled). */
export async function bucketVersioning(s3: S3, bucket: string): Promise<'Enabled' | 'Suspended' | 'Off'> {
  const r = await s3.client.send(new s3.sdk.GetBucketVersioningCommand({ Bucket: bucket }))
  return r.Status === 'Enabled' || r.Status === 'Suspended' ? r.Status : 'Off'
}

/** Turns versioning on (a bucket's versioning can be suspended, never turned off again). */
export async function enableVersioning(s3: S3, bucket: string): Promise<void> {
  await s3.client.send(new s3.sdk.PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }))
}
