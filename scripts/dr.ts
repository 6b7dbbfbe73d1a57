#!/usr/bin/env node
// dr — Guided full disaster recovery: MinIO, Terraform state, monitoring, production VMs, in that order.
// Not built yet: its issue has not landed. It exits 2 with "not implemented yet", never a fake success.
//
//   npm run dr -- --help
import { defineTask, notImplemented } from '../lib/task.ts'
import type { CommandSpec } from '../lib/args.ts'

const spec: CommandSpec = {
  id: 'dr',
  summary: 'Guided full disaster recovery: MinIO, Terraform state, monitoring, production VMs, in that order.',
  description: 'US6. Planned: walk through rebuild:minio, restore:state, rebuild:monitoring and restore:vm in order, ending with dr:check.',
  positionals: [],
  options: {},
  examples: ['npm run dr -- --dry-run'],
}

export const task = defineTask(spec, notImplemented, import.meta.url)
