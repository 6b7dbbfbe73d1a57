#!/usr/bin/env node
// A Grafana stand-in for the lab (Grafana itself cannot be installed here): node http, no dependencies.
//   node test/lab/grafana-stub.mjs --host 127.0.0.5 --port 3000 --user admin --password admin --dashboards FILE [--datasources FILE]
// Answers like Grafana 10.4:
//   GET /api/health   {"commit":"…","database":"ok","version":"10.4.2"} (no auth, as in Grafana)
//   GET /api/search   the dashboards of FILE ([{uid,title,tags}]) as Grafana's search hits; basic auth
//                     required (401 {"message":"Unauthorized"} otherwise); ?query= filters by title
//   GET /api/datasources                    the datasources of DATASOURCES ([{uid,name,type,url}]); basic auth
//   GET /api/datasources/uid/UID/health     for a prometheus datasource, a real query of its URL
//                     (GET /api/v1/query?query=1%2B1), as Grafana's prometheus plugin CheckHealth does:
//                     200 {"status":"OK","message":"Successfully queried the Prometheus API."}, else
//                     400 {"status":"ERROR","message":"…"}; unknown uid 404 {"message":"Data source not found"}
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
    datasources: { type: 'string' },
  },
})
const started = Date.now()
const VERSION = '10.4.2'
const COMMIT = '701c851be7a930e04fbc6ebb1cd4254da80edd4c'
let requests = 0

const dashboards = () => {
  try { return JSON.parse(readFileSync(opt.dashboards ?? '', 'utf8')) } catch { return [] }
}
const datasources = () => {
  try { return JSON.parse(readFileSync(opt.datasources ?? '', 'utf8')) } catch { return [] }
}
/**
 * A datasource's health as Grafana's plugins check it, by a real request to its URL: prometheus
 * CheckHealth queries `1+1`; the alertmanager datasource reads /api/v2/status.
 */
async function dsHealth(ds) {
  const probe = ds.type === 'prometheus' ? '/api/v1/query?query=1%2B1' : ds.type === 'alertmanager' ? '/api/v2/status' : undefined
  if (!probe) return [200, { status: 'OK', message: 'Data source is working' }]
  const ok = ds.type === 'prometheus' ? 'Successfully queried the Prometheus API.' : 'Health check passed.'
  try {
    const r = await fetch(`${ds.url}${probe}`, { signal: AbortSignal.timeout(3000) })
    if (r.ok) return [200, { status: 'OK', message: ok }]
    return [400, { status: 'ERROR', message: `${ds.url} returned HTTP ${r.status}` }]
  } catch (e) {
    return [400, { status: 'ERROR', message: `Get "${ds.url}${probe}": ${e.cause?.code === 'ECONNREFUSED' ? `dial tcp ${new URL(ds.url).host}: connect: connection refused` : e.message}` }]
  }
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
  if (url.pathname === '/api/datasources') {
    return send(res, 200, datasources().map((d, i) => ({ id: i + 1, uid: d.uid, orgId: 1, name: d.name, type: d.type, typeName: d.type === 'prometheus' ? 'Prometheus' : d.type, access: 'proxy', url: d.url, isDefault: i === 0, readOnly: false })))
  }
  const m = /^\/api\/datasources\/uid\/([^/]+)\/health$/.exec(url.pathname)
  if (m) {
    const ds = datasources().find(d => d.uid === decodeURIComponent(m[1]))
    if (!ds) return send(res, 404, { message: 'Data source not found' })
    dsHealth(ds).then(([status, body]) => send(res, status, body))
    return
  }
  return send(res, 404, { message: 'Not found' })
})
server.listen(Number(opt.port), opt.host)
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => { server.close(() => process.exit(0)); server.closeAllConnections() })
