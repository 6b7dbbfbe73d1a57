#!/usr/bin/env node
// restore:state — List, roll back, fall back and return the Terraform state in versioned MinIO.
// Not built yet: its issue has not landed. It exits 2 with "not implemented yet", never a fake success.
//
//   npm run restore:state -- --help
import { runTask, notImplemented } from '../lib/task.ts'
import type { CommandSpec } from '../lib/args.ts'

const spec: CommandSpec = {
  id: 'restore:state',
  summary: 'List, roll back, fall back and return the Terraform state in versioned MinIO.',
  description: 'US2. Being built.',
  positionals: [],
  options: {},
  examples: ['npm run restore:state -- --dry-run'],
}

await runTask(spec, notImplemented)
