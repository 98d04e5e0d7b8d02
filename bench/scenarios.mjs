// Portcullis bench scenarios, as data. Each one starts its own Portcullis with its policy:
//   name     shown in the table (and matched by --only, case-insensitive, spaces or dashes)
//   policy   policy file or directory, relative to the repository root
//   path     the request path (GET); every target in a run is asked the same way
//   headers  request headers (e.g. { 'x-api-key': 'bench-key-acme' })
//   env      extra environment for Portcullis (BENCH_UPSTREAM is always set)
//   setup    optional async (ctx) => ({ env?, measure?, stop? }) run before Portcullis starts.
//            ctx: { freePort(), spawn(cmd, args, env?), waitPort(port, child?), work (temp dir) }.
//            measure: { before(): Promise<S>, after(S, requests): Promise<Record<string, number>> }
//            adds columns per round, e.g. Redis round trips per request from INFO commandstats
//            deltas (cmdstat_evalsha calls + top-level commands / requests).
//   tls      true: Portcullis serves HTTPS (--tls-cert/--tls-key, a certificate made for the run)
//            and is compared with a bare proxy that serves HTTPS too; the load keeps its
//            connections, so this measures TLS record costs, not handshakes.
//   protocol 'h2' (with tls: true: HTTP/2 over TLS, ALPN) or 'h2c' (`--h2c`, prior knowledge): the
//            load speaks HTTP/2 (closed loop, N streams over 4 sessions), Portcullis forwards to an
//            h2c stub upstream (BENCH_H2_UPSTREAM), and the row is compared with a bare
//            node:http2 proxy of the same protocol in front of the same upstream.
//   grpc     true (with protocol): gRPC unary calls (@grpc/grpc-js) to /bench.Echo/Say
//            instead of GETs; the baseline is the bare HTTP/2 proxy carrying the same calls.
//   door     a decision door to load instead of the proxy: 'forward-auth' (HTTP, `--decisions`,
//            GET /forward-auth with X-Forwarded-*) or 'grpc' (`--decisions-grpc`, Envoy's Check).
//            Its req/s are decisions/s, its cpu µs/req the CPU per decision.
//   front    'nginx': nginx with auth_request in front, asking Portcullis's /nginx door; the row
//            is skipped, saying why, when nginx is not installed (the bench is not CI).
//   baselineHeaders  the bare proxy row the scenario is compared with, when not its own headers.
// Later issues add: "API key", "JWT RS256 (cached)", "API key + RBAC", "Redis limits", "audit on/off".
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';

// One private redis-server for every Redis scenario of a run, and a measure of the commands the
// proxy sends per request (INFO commandstats deltas: EVALSHA/EVAL calls plus any other command,
// not counting our own INFO).
let redis;
async function withRedis(ctx) {
  redis ??= (async () => {
    const port = await ctx.freePort();
    await ctx.waitPort(port, ctx.spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']));
    return { url: `redis://127.0.0.1:${port}`, client: new Redis(`redis://127.0.0.1:${port}`, { retryStrategy: () => null }).on('error', () => undefined) };
  })();
  const r = await redis;
  const commands = async () => {
    const info = await r.client.info('commandstats');
    let n = 0;
    for (const m of info.matchAll(/cmdstat_([\w|]+):calls=(\d+)/g)) if (m[1] !== 'info') n += Number(m[2]);
    return n;
  };
  return {
    env: { REDIS_URL: r.url, BENCH_AUDIT_FILE: join(ctx.work, `audit-${Math.random().toString(36).slice(2)}.ndjson`) },
    measure: {
      before: commands,
      after: async (before, requests) => ({ 'redis cmds/req': Number((((await commands()) - before) / Math.max(1, requests)).toFixed(4)) }),
    },
  };
}

// One OTLP sink for every tracing scenario of a run: answers each export 200 and drops it (a real
// collector runs elsewhere; this one costs the machine little).
let otlpSink;
async function withTracing(ctx, sampler) {
  otlpSink ??= (async () => {
    const port = await ctx.freePort();
    const code = `require('node:http').createServer((q, s) => { q.resume(); q.on('end', () => s.end()); }).listen(${port}, '127.0.0.1')`;
    await ctx.waitPort(port, ctx.spawn(process.execPath, ['-e', code]));
    return `http://127.0.0.1:${port}`;
  })();
  const r = await withRedis(ctx);
  return { ...r, env: { ...r.env, OTEL_EXPORTER_OTLP_ENDPOINT: await otlpSink, ...sampler } };
}

export const PATH = '/v1/reports/q1';
/** The stub upstream reports usage (an x-usage-tokens header and a JSON usage field) on this path. */
const USAGE_PATH = '/v1/usage/q1';
const KEY = { 'x-api-key': 'bench-key-acme' };

export const scenarios = [
  {
    name: 'public route',
    policy: 'bench/policies/public',
    path: PATH,
    headers: {},
  },
  {
    name: 'HTTPS h1: public route',
    policy: 'bench/policies/public',
    path: PATH,
    headers: {},
    tls: true,
  },
  // HTTP/2: over TLS (ALPN h2), h2c, and gRPC unary over h2c (the mesh sidecar's case).
  {
    name: 'HTTPS h2: public route',
    policy: 'bench/policies/h2',
    path: PATH,
    headers: {},
    tls: true,
    protocol: 'h2',
  },
  {
    name: 'h2c: public route',
    policy: 'bench/policies/h2',
    path: PATH,
    headers: {},
    protocol: 'h2c',
  },
  {
    name: 'gRPC unary (h2c): public route',
    policy: 'bench/policies/h2',
    path: '/bench.Echo/Say',
    headers: {},
    protocol: 'h2c',
    grpc: true,
  },
  {
    name: 'API key',
    policy: 'bench/policies/api-key',
    path: PATH,
    headers: { 'x-api-key': 'bench-key-acme' },
  },
  {
    name: 'JWT RS256 (cached)',
    policy: 'bench/policies/jwt',
    path: PATH,
    headers: { authorization: `Bearer ${readFileSync(new URL('./policies/jwt/bench-token.txt', import.meta.url), 'utf8').trim()}` },
  },
  {
    name: 'API key + RBAC',
    policy: 'bench/policies/api-key-rbac',
    path: PATH,
    headers: { 'x-api-key': 'bench-key-acme' },
  },
  {
    name: 'API key + RBAC + CEL condition',
    policy: 'bench/policies/api-key-rbac-cel',
    path: PATH,
    headers: { 'x-api-key': 'bench-key-acme' },
  },
  {
    name: 'API key + RBAC + Redis limits (audit off)',
    policy: 'bench/policies/redis-limits',
    path: PATH,
    headers: { 'x-api-key': 'bench-key-acme' },
    setup: withRedis,
  },
  {
    // Against "API key + RBAC + Redis limits (audit off)", which is the same with tracing off.
    name: 'Redis limits + tracing 100%',
    policy: 'bench/policies/redis-limits',
    path: PATH,
    headers: { 'x-api-key': 'bench-key-acme' },
    setup: (ctx) => withTracing(ctx, { OTEL_TRACES_SAMPLER: 'always_on' }),
  },
  {
    name: 'Redis limits + tracing 1%',
    policy: 'bench/policies/redis-limits',
    path: PATH,
    headers: { 'x-api-key': 'bench-key-acme' },
    setup: (ctx) => withTracing(ctx, { OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.01' }),
  },
  {
    name: 'full policy: + chained file audit (audit on)',
    policy: 'bench/policies/full',
    path: PATH,
    headers: { 'x-api-key': 'bench-key-acme' },
    setup: withRedis,
  },
  {
    name: 'metering: Redis limits + usage header charged per response',
    policy: 'bench/policies/metering',
    path: USAGE_PATH,
    headers: { 'x-api-key': 'bench-key-acme' },
    setup: withRedis,
  },
  {
    name: 'metering + token quota (checked per request; not leased)',
    policy: 'bench/policies/metering-quota',
    path: USAGE_PATH,
    headers: { 'x-api-key': 'bench-key-acme' },
    setup: withRedis,
  },
  // The decision doors with the full policy (limits in Redis, chained audit), and nginx asking
  // Portcullis against Portcullis as the proxy ("full policy" above) in the same run.
  {
    name: 'decision: forward-auth (full policy)',
    policy: 'bench/policies/decisions',
    door: 'forward-auth',
    path: '/forward-auth',
    headers: { 'x-forwarded-method': 'GET', 'x-forwarded-proto': 'http', 'x-forwarded-host': 'bench.example.test', 'x-forwarded-uri': PATH, 'x-forwarded-for': '127.0.0.1', ...KEY },
    baselineHeaders: KEY,
    setup: withRedis,
  },
  {
    name: 'decision: gRPC Check (full policy)',
    policy: 'bench/policies/decisions',
    door: 'grpc',
    path: PATH,
    headers: KEY,
    setup: withRedis,
  },
  {
    name: 'nginx + auth_request -> Portcullis (full policy)',
    policy: 'bench/policies/decisions',
    front: 'nginx',
    path: PATH,
    headers: KEY,
    setup: withRedis,
  },
];
