#!/usr/bin/env node
// A Grafana stand-in for the lab (Grafana itself cannot be installed here): node http, no dependencies.
//   node test/lab/grafana-stub.mjs --host 127.0.0.5 --port 3000 --user admin --password admin --dashboards FILE
// Answers like Grafana 10.4:
//   GET /api/health   {"commit":"…","database":"ok","version":"10.4.2"} (no auth, as in Grafana)
//   GET /api/search   the dashboards of FILE ([{uid,title,tags}]) as Grafana's search hits; basic auth
//                     required (401 {"message":"Unauthorized"} otherwise); ?query= filters by title
//   GET /metrics      a few Prometheus metrics, so that Prometheus can scrape it like Grafana
import { createServer } from 'node:http'
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

const { values: opt } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.5' },
    port: { type: 'string', default: '3000' },
    user: { type: 'string', default: 'admin' },
    password: { type: 'string', default: 'admin' },
    dashboards: { type: 'string' },
  },
})
const started = Date.now()
const VERSION = '10.4.2'
const COMMIT = '701c851be7a930e04fbc6ebb1cd4254da80edd4c'
let requests = 0

const dashboards = () => {
  try { return JSON.parse(readFileSync(opt.dashboards ?? '', 'utf8')) } catch { return [] }
}
const send = (res, status, body, type = 'application/json') => {
  res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' })
  res.end(type === 'application/json' ? JSON.stringify(body) : body)
}
const authorized = req => {
  const [scheme, token] = (req.headers.authorization ?? '').split(' ')
  return scheme === 'Basic' && Buffer.from(token ?? '', 'base64').toString() === `${opt.user}:${opt.password}`
}

const server = createServer((req, res) => {
  requests++
  const url = new URL(req.url ?? '/', 'http://grafana')
  if (req.method !== 'GET') return send(res, 405, { message: 'Method Not Allowed' })
  if (url.pathname === '/api/health') return send(res, 200, { commit: COMMIT, database: 'ok', version: VERSION })
  if (url.pathname === '/metrics') {
    return send(res, 200, [
      '# TYPE grafana_build_info gauge',
      `grafana_build_info{edition="oss",version="${VERSION}"} 1`,
      '# TYPE grafana_stat_totals_dashboard gauge',
      `grafana_stat_totals_dashboard ${dashboards().length}`,
      '# TYPE grafana_http_requests_total counter',
      `grafana_http_requests_total ${requests}`,
      '# TYPE process_start_time_seconds gauge',
      `process_start_time_seconds ${started / 1000}`,
      '',
    ].join('\n'), 'text/plain; version=0.0.4')
  }
  if (!url.pathname.startsWith('/api/')) return send(res, 404, 'Not found', 'text/plain')
  if (!authorized(req)) return send(res, 401, { message: 'Unauthorized' })
  if (url.pathname === '/api/search') {
    const q = (url.searchParams.get('query') ?? '').toLowerCase()
    const hits = dashboards()
      .filter(d => d.title.toLowerCase().includes(q))
      .map((d, i) => {
        const slug = d.title.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '')
        return { id: i + 1, uid: d.uid, title: d.title, uri: `db/${slug}`, url: `/d/${d.uid}/${slug}`, slug: '', type: 'dash-db', tags: d.tags ?? [], isStarred: false, sortMeta: 0 }
      })
    return send(res, 200, hits)
  }
  return send(res, 404, { message: 'Not found' })
})
server.listen(Number(opt.port), opt.host)
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => { server.close(() => process.exit(0)); server.closeAllConnections() })
