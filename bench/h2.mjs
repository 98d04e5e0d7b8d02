#!/usr/bin/env node
// HTTP/2 and gRPC rows of the bench: Portcullis (built CLI, --h2c, upstream protocol h2c) against a
// bare HTTP/2 proxy (node:http2 in and out, no policy) in front of the same upstream, in
// interleaved rounds of the same run. Two scenarios: h2c GET (node:http2 client, one session per
// connection, many streams) and gRPC unary (@grpc/grpc-js client). Reports median calls/s, p50/p99
// and Portcullis as a ratio of the bare proxy, whatever it is.
//
//   node bench/h2.mjs [--rounds 3] [--duration 5] [--concurrency 50]
//
// `npm run build` first: this script runs dist/main.js.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: flags } = parseArgs({
  options: { rounds: { type: 'string', default: '3' }, duration: { type: 'string', default: '5' }, concurrency: { type: 'string', default: '50' } },
});
const rounds = Number(flags.rounds);
const durationMs = Number(flags.duration) * 1000;
const concurrency = Number(flags.concurrency);
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-bench-h2-'));
const children = [];

const freePort = () =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

// --- the upstream: one h2c server answering both plain GETs and the gRPC method ---
fs.writeFileSync(path.join(work, 'bench.proto'), 'syntax = "proto3"; package bench; message M { string s = 1; } service Echo { rpc Say (M) returns (M); }');
const proto = grpc.loadPackageDefinition(protoLoader.loadSync(path.join(work, 'bench.proto'))).bench;
const upstream = new grpc.Server();
upstream.addService(proto.Echo.service, { Say: (call, cb) => cb(null, { s: call.request.s }) });
const upstreamPort = await new Promise((resolve, reject) => upstream.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
const upstreamUrl = `http://127.0.0.1:${upstreamPort}`;

// --- the bare HTTP/2 proxy: node:http2 in and out (one upstream session), hop-by-hop headers dropped, trailers passed ---
const bareUrl = await (async () => {
  const upstreamSession = http2.connect(upstreamUrl);
  const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'host']);
  const server = http2.createServer((req, res) => {
    const headers = { ':method': req.method, ':path': req.url };
    for (const k in req.headers) if (k[0] !== ':' && !HOP.has(k)) headers[k] = req.headers[k];
    const up = upstreamSession.request(headers, { endStream: req.method === 'GET' });
    if (req.method !== 'GET') req.pipe(up);
    up.on('response', (h) => {
      const out = {};
      for (const k in h) if (k[0] !== ':') out[k] = h[k];
      res.writeHead(h[':status'], out);
      up.pipe(res);
    });
    // gRPC's status travels in the trailers.
    up.on('trailers', (t) => res.addTrailers(t));
    up.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${server.address().port}`;
})();

// --- Portcullis: the built CLI with --h2c ---
const policy = path.join(work, 'policy.yaml');
fs.writeFileSync(
  policy,
  `version: 1
upstreams: { echo: { url: "${upstreamUrl}", protocol: h2c } }
routes:
  - { name: grpc, match: { path: "/bench.Echo/*" }, public: true, upstream: echo }
  - { name: plain, match: { path: "/**" }, public: true, upstream: echo }
`,
);
const [proxyPort, adminPort] = [await freePort(), await freePort()];
const child = spawn(
  process.execPath,
  ['--no-memory-reducer', path.join(root, 'dist/main.js'), 'serve', '--h2c', '--policy', policy, '--listen', `127.0.0.1:${proxyPort}`, '--admin', `127.0.0.1:${adminPort}`],
  {
    env: { ...process.env, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  },
);
children.push(child);
for (let i = 0; ; i++) {
  if (
    await fetch(`http://127.0.0.1:${adminPort}/healthz`).then(
      (r) => r.ok,
      () => false,
    )
  )
    break;
  if (i > 200) throw new Error('portcullis did not start');
  await new Promise((r) => setTimeout(r, 50));
}
const portcullisUrl = `http://127.0.0.1:${proxyPort}`;

// --- load: `concurrency` calls always in flight for durationMs ---
async function load(one, ms = durationMs) {
  const lat = [];
  let errors = 0;
  const end = performance.now() + ms;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        if (await one()) lat.push(performance.now() - t);
        else errors++;
      }
    }),
  );
  lat.sort((a, b) => a - b);
  return { rps: lat.length / (ms / 1000), p50: lat[Math.floor(lat.length * 0.5)] ?? 0, p99: lat[Math.floor(lat.length * 0.99)] ?? 0, errors };
}

function h2Get(url) {
  const sessions = Array.from({ length: 4 }, () => http2.connect(url));
  let n = 0;
  const one = () =>
    new Promise((resolve) => {
      const req = sessions[n++ % sessions.length].request({ ':path': '/plain' });
      let status = 0;
      req.on('response', (h) => (status = h[':status']));
      req.on('data', () => undefined);
      req.on('end', () => resolve(status === 200 || status === 404 || status === 415));
      req.on('error', () => resolve(false));
    });
  return {
    one,
    close: () => {
      for (const s of sessions) s.close();
    },
  };
}

function grpcUnary(url) {
  const client = new proto.Echo(new URL(url).host, grpc.credentials.createInsecure());
  const one = () => new Promise((resolve) => client.Say({ s: 'x' }, (err) => resolve(err === null)));
  return { one, close: () => client.close() };
}

const scenarios = [
  ['h2c GET', h2Get],
  ['gRPC unary', grpcUnary],
];
const targets = [
  ['bare h2 proxy', bareUrl],
  ['portcullis', portcullisUrl],
];
const results = new Map();
try {
  for (let r = 0; r < rounds; r++) {
    for (const [name, make] of scenarios) {
      for (const [target, url] of targets) {
        const c = make(url);
        await load(c.one, 1000); // warm-up: connections open, JIT warm
        const m = await load(c.one);
        c.close();
        const key = `${name}|${target}`;
        if (!results.has(key)) results.set(key, []);
        results.get(key).push(m);
      }
    }
  }
} finally {
  for (const ch of children) ch.kill('SIGKILL');
  upstream.forceShutdown();
}

const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const lines = ['| scenario | target | calls/s | p50 ms | p99 ms | errors | vs bare |', '| --- | --- | ---: | ---: | ---: | ---: | ---: |'];
for (const [name] of scenarios) {
  const bare = median(results.get(`${name}|bare h2 proxy`).map((m) => m.rps));
  for (const [target] of targets) {
    const ms = results.get(`${name}|${target}`);
    const rps = median(ms.map((m) => m.rps));
    lines.push(
      `| ${name} | ${target} | ${rps.toFixed(0)} | ${median(ms.map((m) => m.p50)).toFixed(2)} | ${median(ms.map((m) => m.p99)).toFixed(2)} | ${ms.reduce((a, m) => a + m.errors, 0)} | ${(rps / bare).toFixed(2)} |`,
    );
  }
}
console.log(lines.join('\n'));
process.exit(0);
