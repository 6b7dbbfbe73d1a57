// restore:state restore, end to end against the lab's S3 and real terraform. What this project adds
// is the wall time minus terraform init + plan (Terraform's own work), goal ≤ 3 s; and the number of
// S3 requests per restore (the report's s3Requests, counted by SDK middleware).
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ListObjectVersionsCommand } from '@aws-sdk/client-s3'
import { labEnv, labUp, FIXTURE, ROOT } from '../test/lab/lab.ts'
import * as s3lab from '../test/lab/s3.ts'
import { terraform } from '../lib/terraform.ts'
import { stat, timed, type Row } from './measure.ts'

export async function restoreState(iterations: number): Promise<Row[]> {
  await labUp(['node', 's3'])
  const key = `bench/${process.pid}-${Date.now()}/terraform.tfstate`
  const tfDir = mkdtempSync(join(tmpdir(), 'hdr-bench-state-'))
  const envDir = join(tfDir, 'environments', 'bench')
  cpSync(join(FIXTURE, 'terraform.tfvars'), join(tfDir, 'terraform.tfvars'))
  cpSync(join(FIXTURE, 'environments', 'prod'), envDir, { recursive: true })
  const main = join(envDir, 'main.tf')
  writeFileSync(main, readFileSync(main, 'utf8').replace('"prod/terraform.tfstate"', JSON.stringify(key)))
  const creds = { accessKey: s3lab.S3_ACCESS_KEY, secretKey: s3lab.S3_SECRET_KEY }
  const tf = async (...args: string[]) => {
    const r = await terraform(envDir, args, { creds })
    if (r.exitCode !== 0) throw new Error(`terraform ${args.join(' ')}: ${r.stderr}`)
  }
  // Two versions: the first (to restore) and the current.
  await tf('init', '-input=false')
  await tf('apply', '-auto-approve', '-input=false')
  writeFileSync(join(envDir, 'extra.tf'), 'resource "terraform_data" "extra" {\n  input = "x"\n}\n')
  await tf('apply', '-auto-approve', '-input=false')
  const s3 = s3lab.s3Client()
  const listed = await s3.send(new ListObjectVersionsCommand({ Bucket: 'tfstate', Prefix: key }))
  const oldest = [...(listed.Versions ?? [])].filter((v) => v.Key === key).sort((a, b) => a.LastModified!.getTime() - b.LastModified!.getTime())[0]
  if (!oldest?.VersionId) throw new Error('bench: no state version to restore')

  const env = labEnv({ HOMELAB_TF_DIR: tfDir, HDR_STATE_DIR: join(tfDir, 'mirror'), HDR_REPORTS_DIR: join(tfDir, 'reports') })
  const walls: number[] = []
  const overhead: number[] = []
  const requests: number[] = []
  const rss: number[] = []
  for (let i = 0; i < iterations; i++) {
    const r = timed(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/restore-state.ts'), 'restore', '--env', 'bench', '--version', oldest.VersionId, '--yes', '--json'], { env, cwd: ROOT })
    if (r.code !== 0) throw new Error(`bench: restore:state exited ${r.code}: ${r.stderr.slice(-500)}`)
    const doc = JSON.parse(r.stdout) as { facts: { s3Requests: number }; steps: Array<{ title: string; ms: number }> }
    const terraformMs = doc.steps.filter((s) => s.title.startsWith('terraform')).reduce((a, s) => a + s.ms, 0)
    walls.push(r.ms)
    overhead.push(r.ms - terraformMs)
    requests.push(doc.facts.s3Requests)
    rss.push(r.rssKb / 1024)
  }
  s3.destroy()
  rmSync(tfDir, { recursive: true, force: true })
  const o = stat(overhead)
  return [
    { scenario: 'restore:state restore', metric: 'wall time, end to end', unit: 'ms', stat: stat(walls) },
    { scenario: 'restore:state restore', metric: 'wall time minus terraform init + plan', unit: 'ms', stat: o, goal: '≤ 3000 ms', met: o.median <= 3000, note: 'includes ~0.45 s of tsx start-up' },
    { scenario: 'restore:state restore', metric: 'S3 requests per restore', unit: 'requests', stat: stat(requests) },
    { scenario: 'restore:state restore', metric: 'peak RSS', unit: 'MiB', stat: stat(rss), note: 'the largest process of the tree: terraform itself' },
  ]
}
