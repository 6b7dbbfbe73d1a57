#!/usr/bin/env node
// dr:check — Final health check: every guest running and reachable, monitoring healthy, backups recent.
// Not built yet: its issue has not landed. It exits 2 with "not implemented yet", never a fake success.
//
//   npm run dr:check -- --help
import { defineTask, notImplemented } from '../lib/task.ts'
import type { CommandSpec } from '../lib/args.ts'

const spec: CommandSpec = {
  id: 'dr:check',
  summary: 'Final health check: every guest running and reachable, monitoring healthy, backups recent.',
  description: 'US6.3. Planned: check connectivity of every guest, the monitoring endpoints and recent backups.',
  positionals: [],
  options: {},
  examples: ['npm run dr:check -- --dry-run'],
}

export const task = defineTask(spec, notImplemented, import.meta.url)
