#!/usr/bin/env node
// rebuild:monitoring — Restore the monitoring VM from its latest backup and check Prometheus, Grafana and Alertmanager.
// Not built yet: its issue has not landed. It exits 2 with "not implemented yet", never a fake success.
//
//   npm run rebuild:monitoring -- --help
import { defineTask, notImplemented } from '../lib/task.ts'
import type { CommandSpec } from '../lib/args.ts'

const spec: CommandSpec = {
  id: 'rebuild:monitoring',
  summary: 'Restore the monitoring VM from its latest backup and check Prometheus, Grafana and Alertmanager.',
  description: 'US4. Planned: restore the monitoring VM, then check docker compose ps, Prometheus targets, Grafana dashboards and Alertmanager.',
  positionals: [],
  options: {},
  examples: ['npm run rebuild:monitoring -- --dry-run'],
}

export const task = defineTask(spec, notImplemented, import.meta.url)
