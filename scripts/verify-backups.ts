#!/usr/bin/env node
// verify:backups — Check every vzdump file and every Terraform state version is restorable data.
// Not built yet: its issue has not landed. It exits 2 with "not implemented yet", never a fake success.
//
//   npm run verify:backups -- --help
import { runTask, notImplemented } from '../lib/task.ts'
import type { CommandSpec } from '../lib/args.ts'

const spec: CommandSpec = {
  id: 'verify:backups',
  summary: 'Check every vzdump file and every Terraform state version is restorable data.',
  description: 'US5. Being built.',
  positionals: [],
  options: {},
  examples: ['npm run verify:backups -- --dry-run'],
}

await runTask(spec, notImplemented)
