#!/usr/bin/env node
// restore:vm — Restore a VM or LXC container from vzdump, start it and prove it with ping + SSH.
// Not built yet: its issue has not landed. It exits 2 with "not implemented yet", never a fake success.
//
//   npm run restore:vm -- --help
import { runTask, notImplemented } from '../lib/task.ts'
import type { CommandSpec } from '../lib/args.ts'

const spec: CommandSpec = {
  id: 'restore:vm',
  summary: 'Restore a VM or LXC container from vzdump, start it and prove it with ping + SSH.',
  description: 'US1. Being built.',
  positionals: [],
  options: {},
  examples: ['npm run restore:vm -- --dry-run'],
}

await runTask(spec, notImplemented)
