// Closed-loop load generators over HTTP/2 (autocannon speaks only HTTP/1.1): `connections`
// requests in flight at all times, as streams multiplexed over a few sessions (a gRPC client keeps
// one connection per channel, Envoy one per worker). Each returns the parts of an autocannon
// result bench/run.mjs reads. h2 GETs go through node:http2; gRPC unary calls through
// @grpc/grpc-js, the client a gRPC service actually meets.
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';

const SESSIONS = 4;
const percentile = (sorted, p) => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]);

/** Runs `one()` (resolving to 'ok' | 'non2xx' | 'error') from `connections` workers for `seconds`. */
async function closedLoop(one, connections, seconds) {
  const latencies = [];
  let total = 0;
  let non2xx = 0;
  let errors = 0;
  const until = Date.now() + seconds * 1000;
  const worker = async (i) => {
    while (Date.now() < until) {
      const t0 = process.hrtime.bigint();
      const out = await one(i);
      if (out === 'error') errors++;
      else {
        total++;
        if (out === 'non2xx') non2xx++;
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
    }
  };
  const start = Date.now();
  await Promise.all(Array.from({ length: connections }, (_, i) => worker(i)));
  const elapsed = (Date.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    requests: { average: total / elapsed, total },
    latency: { p50: Number(percentile(latencies, 50).toFixed(2)), p99: Number(percentile(latencies, 99).toFixed(2)) },
    non2xx,
    errors,
    timeouts: 0,
  };
}

/** GET `path` with `headers` at `url` (https: h2 over TLS, trusting `ca`; http: h2c with prior knowledge). */
export async function h2Load({ url, path, headers = {}, ca, connections, seconds }) {
  const sessions = await Promise.all(
    Array.from(
      { length: SESSIONS },
      () =>
        new Promise((resolve, reject) => {
          // An IP address is no TLS server name (RFC 6066): the bench certificates name localhost too.
          const s = http2.connect(url, ca === undefined ? {} : { ca: readFileSync(ca), servername: 'localhost' });
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        }),
    ),
  );
  for (const s of sessions) s.on('error', () => undefined);
  const request = { ':method': 'GET', ':path': path, ...headers };
  const one = (i) =>
    new Promise((resolve) => {
      const req = sessions[i % SESSIONS].request(request);
      let status = 0;
      req.on('response', (h) => (status = h[':status']));
      req.on('data', () => undefined);
      req.on('end', () => resolve(status >= 200 && status < 300 ? 'ok' : 'non2xx'));
      req.on('error', () => resolve('error'));
    });
  try {
    return await closedLoop(one, connections, seconds);
  } finally {
    for (const s of sessions) s.close();
  }
}

// The stub upstream echoes the request message back, so one message type serves both ways: a
// string field 1, as `message M { string s = 1; }` encodes it. Hand-encoded, no .proto to load.
const MESSAGE = Buffer.from([0x0a, 0x05, ...Buffer.from('bench')]);
const bytes = (b) => b;

/** Unary calls to /bench.Echo/Say at `address` (HOST:PORT; over TLS trusting `ca`, else h2c); status OK counts as 2xx, any other status as non-2xx. */
export async function grpcUnaryLoad({ address, ca, connections, seconds }) {
  const credentials = ca === undefined ? grpc.credentials.createInsecure() : grpc.credentials.createSsl(readFileSync(ca));
  // A local subchannel pool per client: otherwise all channels to one address share one connection.
  const options = { 'grpc.use_local_subchannel_pool': 1, ...(ca === undefined ? {} : { 'grpc.ssl_target_name_override': 'localhost' }) };
  const clients = Array.from({ length: SESSIONS }, () => new grpc.Client(address, credentials, options));
  await Promise.all(clients.map((c) => new Promise((resolve, reject) => c.waitForReady(Date.now() + 10_000, (err) => (err ? reject(err) : resolve())))));
  const one = (i) =>
    new Promise((resolve) => {
      clients[i % SESSIONS].makeUnaryRequest('/bench.Echo/Say', bytes, bytes, MESSAGE, (err) => resolve(err ? 'non2xx' : 'ok'));
    });
  try {
    return await closedLoop(one, connections, seconds);
  } finally {
    for (const c of clients) c.close();
  }
}
