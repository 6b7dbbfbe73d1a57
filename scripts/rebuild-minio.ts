#!/usr/bin/env node
// rebuild:minio — Rebuild the MinIO container, recreate its buckets and push the state back.
// Not built yet: its issue has not landed. It exits 2 with "not implemented yet", never a fake success.
//
//   npm run rebuild:minio -- --help
import { defineTask, notImplemented } from '../lib/task.ts'
import type { CommandSpec } from '../lib/args.ts'

const spec: CommandSpec = {
  id: 'rebuild:minio',
  summary: 'Rebuild the MinIO container, recreate its buckets and push the state back.',
  description: 'US3. Planned: recreate the MinIO container with the same IP, ports and buckets, push local state back, and check terraform init in every environment.',
  positionals: [],
  options: {},
  examples: ['npm run rebuild:minio -- --dry-run'],
}

export const task = defineTask(spec, notImplemented, import.meta.url)
