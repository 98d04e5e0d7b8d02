#!/usr/bin/env node
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
// `npm run bench`: the stub upstream directly, a bare undici proxy (the Node ceiling) and Portcullis
// in each scenario (bench/scenarios.mjs), measured with autocannon in interleaved rounds so drift in
// the machine's speed hits every target alike. Reports median req/s, p50/p99 latency, throughput as
// a ratio of the bare proxy serving the same request in the same run, and non-2xx counts; writes
// bench/results/latest.{json,md}. The HTTP/2 scenarios (h2 over TLS, h2c, gRPC unary) load an h2c
// stub upstream (bench/h2-upstream.mjs) through Portcullis and through a bare node:http2 proxy of
// the same protocol (bench/bare-h2-proxy.mjs), with an HTTP/2 load loop (bench/h2-load.mjs).
//
//   npm run bench -- [--rounds 3] [--duration 5] [--connections 50] [--warmup 5]
//                    [--only direct,bare,public-route] [--json FILE] [--against DIR]
//
// --against DIR also runs every scenario on the build in DIR (another checkout, built, e.g. a
// `git worktree` of the commit before a change), in the same interleaved rounds: its rows say
// how a change moved req/s and CPU per request on the same machine at the same time.
//
// `npm run bench` builds first (prebench); this script builds nothing.
import { renderChart } from './chart.mjs';
import { checkRequest, grpcLoad } from './grpc-load.mjs';
import { grpcUnaryLoad, h2Load } from './h2-load.mjs';
import { nginxMissing, startNginx } from './nginx-front.mjs';
import { nodeFlags } from './node-flags.mjs';
import { PATH, scenarios } from './scenarios.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: flags } = parseArgs({
  options: {
    rounds: { type: 'string', default: '4' },
    duration: { type: 'string', default: '5' },
    connections: { type: 'string', default: '50' },
    warmup: { type: 'string', default: '5' },
    processes: { type: 'string', default: '2' },
    only: { type: 'string' },
    json: { type: 'string' },
    against: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
  strict: true,
});
if (flags.help) {
  console.log('usage: npm run bench -- [--rounds 4] [--duration 5] [--connections 50] [--warmup 5] [--processes 2] [--only direct,bare,public-route] [--json FILE] [--against DIR]');
  process.exit(0);
}
const rounds = Number(flags.rounds);
const duration = Number(flags.duration);
const connections = Number(flags.connections);
const warmup = Number(flags.warmup);
const processes = Number(flags.processes);
for (const [k, v] of Object.entries({ rounds, duration, connections, processes })) {
  if (!Number.isInteger(v) || v <= 0) throw new Error(`--${k} must be a positive integer`);
}
// Punctuation folds into dashes too: "HTTPS h2: public route" is --only https-h2-public-route.
const slug = (s) =>
  s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '');
const only = flags.only ? new Set(flags.only.split(',').map(slug)) : null;
const wanted = (name) => !only || only.has(slug(name)) || (name === 'bare undici proxy' && only.has('bare'));

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-bench-'));
const children = [];
const freePort = () =>
  new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
const start = (cmd, args, env = {}, cwd = root) => {
  const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => (err = (err + d).slice(-4000)));
  child.lastErr = () => err;
  children.push(child);
  return child;
};
const waitPort = async (port, child, ms = 20_000) => {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (child && child.exitCode !== null) throw new Error(`exited early (${child.exitCode}): ${child.lastErr()}`);
    const ok = await new Promise((r) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.end();
        r(true);
      });
      s.on('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`port ${port} never opened${child ? `: ${child.lastErr()}` : ''}`);
};
const waitReady = async (adminPort, child, ms = 20_000) => {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`portcullis exited early (${child.exitCode}): ${child.lastErr()}`);
    const ok = await fetch(`http://127.0.0.1:${adminPort}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`portcullis never became ready: ${child.lastErr()}`);
};
const stopAll = async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  const until = Date.now() + 5_000;
  while (children.some((c) => c.exitCode === null && c.signalCode === null) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  fs.rmSync(work, { recursive: true, force: true });
};
process.on('SIGINT', () => void stopAll().then(() => process.exit(130)));

// CPU time the proxy process spent (µs): its main thread (the event loop, which bounds its
// throughput) and all its threads. Steadier than req/s on a small, shared machine. Linux only.
const TICK_US = 1e6 / 100; // USER_HZ
function cpuOf(pid) {
  if (pid === undefined) return undefined;
  const read = (file) => {
    const f = fs.readFileSync(file, 'utf8');
    const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * TICK_US;
  };
  try {
    return { main: read(`/proc/${pid}/task/${pid}/stat`), all: read(`/proc/${pid}/stat`) };
  } catch {
    return undefined;
  }
}

// Portcullis runs as deployed: with the node flags its executable's shebang line names.
const NODE_FLAGS = nodeFlags('dist/main.js');

/** The Node major of the Docker image (its NODE_IMAGE argument, e.g. node:24-slim), if it names one. */
function imageNode() {
  const m = /^ARG NODE_IMAGE=node:(\d+)/m.exec(fs.readFileSync(path.join(root, 'Dockerfile'), 'utf8'));
  return m === null ? undefined : m[1];
}
const BARE = 'bare undici proxy';
const BARE_H2 = 'bare node:http2 proxy';
const rank = (t) => (t.name === 'direct' ? 0 : t.bare ? 1 : 2);
const SETTLE_MS = 300;
/** Fisher–Yates with a small seeded PRNG (mulberry32). */
function shuffled(xs, seed) {
  let a = seed >>> 0;
  const rand = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
/** One self-signed certificate for every HTTPS target of the run (made with openssl, like the tests'). */
let tlsPair;
function tlsFiles() {
  if (tlsPair === undefined) {
    const cert = path.join(work, 'bench-tls.crt');
    const key = path.join(work, 'bench-tls.key');
    const made = spawnSync('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ]);
    if (made.status !== 0) throw new Error(`openssl could not make the bench certificate: ${made.stderr}`);
    tlsPair = { cert, key };
  }
  return tlsPair;
}
const load = (target, proc, seconds) => {
  if (target.grpc) return grpcLoad({ address: proc.grpc, request: target.grpc, connections, seconds });
  if (target.h2 === 'grpc') return grpcUnaryLoad({ address: new URL(proc.url).host, ca: proc.ca, connections, seconds });
  if (target.h2 === 'get') return h2Load({ url: proc.url, path: target.path, headers: target.headers, ca: proc.ca, connections, seconds });
  return autocannon({ url: proc.url + target.path, connections, duration: seconds, headers: target.headers });
};
/** gRPC unary calls go to the stub's echo method; every other HTTP/2 row GETs the bench path. */
const GRPC_PATH = '/bench.Echo/Say';

async function main() {
  const ctx = { freePort, spawn: start, waitPort, work };
  const upPort = await freePort();
  await waitPort(upPort, start(process.execPath, ['bench/upstream.mjs', String(upPort)]));
  const upstream = `http://127.0.0.1:${upPort}`;
  const targets = [];
  if (wanted('direct')) targets.push({ name: 'direct', path: PATH, headers: {}, procs: [{ url: upstream }] });
  // Each scenario is compared with the bare proxy serving the same request: a credential header
  // (a 25-byte API key, a 700-byte JWT) costs a proxy that parses and forwards it, policy or not.
  // One bare target per distinct request shape.
  //
  // Every proxy target runs on `processes` processes of its own, and round r loads process
  // r mod processes: two identical processes of one program can differ by 8% in CPU per request
  // for their whole life (seen here: two bare proxies, 135 and 148 µs/req over all 10 rounds), so
  // a row measured on a single process carries that luck of the draw, and so does its ratio.
  const bareFor = new Map();
  const bareTarget = async (headers, tls = false) => {
    const key = JSON.stringify([headers, tls]);
    let t = bareFor.get(key);
    if (t === undefined) {
      const names = Object.keys(headers);
      const name = `${names.length === 0 ? BARE : `${BARE} + ${names.join(', ')}`}${tls ? ' (HTTPS)' : ''}`;
      const procs = [];
      for (let i = 0; i < processes; i++) {
        const port = await freePort();
        // The node flags Portcullis runs with, so both sides of a ratio run on the same runtime
        // settings: without --no-memory-reducer a bare process that sat idle while other rows ran
        // paid for its shrunken heap afterwards (Node 24: 135 against 120 µs/req for a while).
        const pair = tls ? [tlsFiles().cert, tlsFiles().key] : [];
        const bare = start(process.execPath, [...NODE_FLAGS, 'bench/bare-proxy.mjs', String(port), upstream, ...pair]);
        await waitPort(port, bare);
        procs.push({ url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`, pid: bare.pid });
      }
      bareFor.set(key, (t = { name, path: PATH, headers, procs, bare: true }));
      targets.push(t);
    }
    return t;
  };
  await bareTarget({});

  // The HTTP/2 rows: one h2c stub upstream for all of them, started when a scenario needs it, and
  // a bare node:http2 proxy per protocol (h2 over TLS, h2c) and request shape (GET, gRPC unary).
  let h2Upstream;
  const h2UpstreamUrl = async () => {
    h2Upstream ??= (async () => {
      const port = await freePort();
      await waitPort(port, start(process.execPath, ['bench/h2-upstream.mjs', String(port)]));
      return `http://127.0.0.1:${port}`;
    })();
    return h2Upstream;
  };
  const bareH2Target = async (protocol, grpc) => {
    const key = JSON.stringify(['h2', protocol, grpc]);
    let t = bareFor.get(key);
    if (t === undefined) {
      const tls = protocol === 'h2';
      const name = `${BARE_H2} (${tls ? 'h2, TLS' : 'h2c'})${grpc ? ': gRPC unary' : ''}`;
      const up = await h2UpstreamUrl();
      const procs = [];
      for (let i = 0; i < processes; i++) {
        const port = await freePort();
        const pair = tls ? [tlsFiles().cert, tlsFiles().key] : [];
        const bare = start(process.execPath, [...NODE_FLAGS, 'bench/bare-h2-proxy.mjs', String(port), up, ...pair]);
        await waitPort(port, bare);
        procs.push({ url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`, pid: bare.pid, ca: tls ? tlsFiles().cert : undefined });
      }
      bareFor.set(key, (t = { name, path: grpc ? GRPC_PATH : PATH, headers: {}, procs, bare: true, h2: grpc ? 'grpc' : 'get' }));
      targets.push(t);
    }
    return t;
  };

  const builds = [{ label: 'portcullis', dir: root }];
  if (flags.against !== undefined) builds.push({ label: `portcullis@${path.basename(path.resolve(flags.against))}`, dir: path.resolve(flags.against) });
  for (const s of scenarios.filter((sc) => wanted(sc.name))) {
    const skip = s.front === 'nginx' ? nginxMissing() : undefined;
    if (skip !== undefined) {
      process.stderr.write(`skipping "${s.name}": ${skip}\n`);
      continue;
    }
    const h2Env = s.protocol ? { BENCH_H2_UPSTREAM: await h2UpstreamUrl() } : {};
    for (const build of builds) {
      const procs = [];
      for (let i = 0; i < processes; i++) {
        const extra = s.setup ? await s.setup(ctx) : {}; // per process: e.g. its own audit file
        const [port, adminPort, decisionPort] = [await freePort(), await freePort(), await freePort()];
        const doorArgs = s.door === 'grpc' ? ['--decisions-grpc', `127.0.0.1:${decisionPort}`] : s.door || s.front ? ['--decisions', `127.0.0.1:${decisionPort}`] : [];
        const child = start(
          process.execPath,
          [
            ...NODE_FLAGS,
            'dist/main.js',
            'serve',
            '--policy',
            s.policy,
            '--listen',
            `127.0.0.1:${port}`,
            '--admin',
            `127.0.0.1:${adminPort}`,
            ...doorArgs,
            ...(s.tls ? ['--tls-cert', tlsFiles().cert, '--tls-key', tlsFiles().key] : []),
            ...(s.protocol === 'h2c' ? ['--h2c'] : []),
          ],
          { LOG_LEVEL: 'warn', BENCH_UPSTREAM: upstream, ...h2Env, ...s.env, ...extra.env },
          build.dir,
        );
        await waitReady(adminPort, child);
        const proc = { url: `${s.tls ? 'https' : 'http'}://127.0.0.1:${port}`, pid: child.pid, measure: extra.measure, ca: s.tls ? tlsFiles().cert : undefined };
        if (s.door === 'grpc') proc.grpc = `127.0.0.1:${decisionPort}`;
        else if (s.door) proc.url = `http://127.0.0.1:${decisionPort}`;
        if (s.front === 'nginx') {
          const frontPort = await freePort();
          const nginx = await startNginx(ctx, { port: frontPort, upstream, decisions: `http://127.0.0.1:${decisionPort}` });
          proc.url = `http://127.0.0.1:${frontPort}`;
          proc.frontPid = nginx.pid;
        }
        procs.push(proc);
      }
      const headers = s.headers ?? {};
      const baseline = s.protocol ? (await bareH2Target(s.protocol, s.grpc === true)).name : (await bareTarget(s.baselineHeaders ?? headers, s.tls === true)).name;
      const grpc = s.door === 'grpc' ? checkRequest(s.path, headers) : undefined;
      const h2 = s.protocol ? (s.grpc ? 'grpc' : 'get') : undefined;
      targets.push({ name: `${build.label}: ${s.name}`, path: s.path, headers, procs, baseline, grpc, h2 });
    }
  }
  // Bare rows first, so the table reads baseline, then what is measured against it.
  targets.sort((a, b) => rank(a) - rank(b));

  // Seconds of load per target before measuring: a JIT-compiled proxy takes several seconds of
  // traffic to reach its steady state (Portcullis ~10 s on 2 cores), and steady state is what a
  // long-running proxy serves at. Every target gets the same warm-up.
  if (warmup > 0) for (const t of targets) for (const p of t.procs) await load(t, p, warmup);
  const samples = new Map(targets.map((t) => [t.name, []]));
  for (let r = 0; r < rounds; r++) {
    // A new order each round (seeded: runs are repeatable), so no target always runs first or
    // always right after the same other one: a plain rotation kept every predecessor fixed, and the
    // target after "direct" (20k req/s through the stub) always ran in its aftermath.
    const order = shuffled(targets, r + 1);
    for (const t of order) {
      await new Promise((resolve) => setTimeout(resolve, SETTLE_MS)); // let the last load's sockets close
      const p = t.procs[r % t.procs.length];
      const before = p.measure ? await p.measure.before() : undefined;
      const cpu0 = cpuOf(p.pid);
      const front0 = cpuOf(p.frontPid);
      const res = await load(t, p, duration);
      const cpu1 = cpuOf(p.pid);
      const front1 = cpuOf(p.frontPid);
      const extra = p.measure ? await p.measure.after(before, res.requests.total) : {};
      const perRequest = (a, b) => (a === undefined || b === undefined ? undefined : Number(((b - a) / Math.max(1, res.requests.total)).toFixed(1)));
      const cpu = cpu0 === undefined ? {} : { 'main µs/req': perRequest(cpu0.main, cpu1?.main), 'cpu µs/req': perRequest(cpu0.all, cpu1?.all) };
      // The data plane in front (nginx), apart: Portcullis's own columns stay comparable across rows.
      if (front0 !== undefined) cpu['front cpu µs/req'] = perRequest(front0.all, front1?.all);
      samples.get(t.name).push({
        process: r % t.procs.length,
        rps: res.requests.average,
        p50: res.latency.p50,
        p99: res.latency.p99,
        non2xx: res.non2xx,
        errors: res.errors + res.timeouts,
        requests: res.requests.total,
        ...cpu,
        ...extra,
      });
      process.stderr.write(`round ${r + 1}/${rounds} ${t.name} #${r % t.procs.length}: ${Math.round(res.requests.average)} req/s, p99 ${res.latency.p99} ms, non-2xx ${res.non2xx}\n`);
    }
  }

  const medianRps = (name) => median(samples.get(name).map((s) => s.rps));
  const rows = targets.map((t) => {
    const ss = samples.get(t.name);
    const rps = median(ss.map((s) => s.rps));
    const baseline = t.baseline ?? BARE;
    const extraKeys = Object.keys(ss[0]).filter((k) => !['process', 'rps', 'p50', 'p99', 'non2xx', 'errors', 'requests'].includes(k));
    return {
      name: t.name,
      rps: Math.round(rps),
      p50: median(ss.map((s) => s.p50)),
      p99: median(ss.map((s) => s.p99)),
      baseline,
      ratioToBare: Number((rps / medianRps(baseline)).toFixed(3)),
      non2xx: ss.reduce((a, s) => a + s.non2xx, 0),
      errors: ss.reduce((a, s) => a + s.errors, 0),
      extra: Object.fromEntries(extraKeys.map((k) => [k, median(ss.map((s) => s[k]))])),
      rounds: ss,
    };
  });
  // Throughput a single event loop can reach is bounded by its CPU per request: the bare proxy's
  // main-thread µs/req over each target's is the steadier twin of the req/s ratio.
  for (const r of rows) {
    const bareMain = rows.find((b) => b.name === r.baseline)?.extra['main µs/req'];
    const m = r.extra['main µs/req'];
    if (bareMain !== undefined && m !== undefined && m > 0) r.extra['× bare (main CPU)'] = Number((bareMain / m).toFixed(2));
  }
  const meta = { date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, rounds, duration, connections, warmup, processes, path: PATH, imageNode: imageNode() };
  // Node versions differ in what a request costs, and not alike for both sides of a ratio: say when
  // this run's Node is not the one the Docker image ships.
  const sameAsImage = meta.imageNode === undefined || process.version.startsWith(`v${meta.imageNode}.`);
  // Columns a scenario's measure adds (e.g. redis round trips per request); blank for the others.
  const extraCols = [...new Set(rows.flatMap((r) => Object.keys(r.extra)))];
  const cell = (v, col = '') => (v === undefined ? '' : col.startsWith('×') || !Number.isInteger(v) ? v.toFixed(2) : String(v));
  const md = [
    `Bench ${meta.date} · node ${meta.node}${sameAsImage ? '' : ` (the Docker image runs Node ${meta.imageNode})`} · ${meta.cpus} CPUs · ${rounds} rounds × ${duration}s · ${connections} connections · ${processes} processes per proxy target (medians)`,
    '',
    `| target | req/s | p50 ms | p99 ms | × bare | non-2xx | errors |${extraCols.map((c) => ` ${c} |`).join('')}`,
    `| --- | ---: | ---: | ---: | ---: | ---: | ---: |${extraCols.map(() => ' ---: |').join('')}`,
    ...rows.map((r) => `| ${r.name} | ${r.rps} | ${r.p50} | ${r.p99} | ${r.ratioToBare.toFixed(2)} | ${r.non2xx} | ${r.errors} |${extraCols.map((c) => ` ${cell(r.extra[c], c)} |`).join('')}`),
    '',
    '× bare: against the bare proxy serving the same request (same path and headers; a "bare undici proxy + …" row when the scenario sends a credential). × bare (main CPU): the same, from main-thread CPU per request.',
    "decision rows: req/s are decisions/s and cpu µs/req the CPU per decision of the Portcullis process (nothing is forwarded); front cpu µs/req: nginx's own CPU per request in the nginx + auth_request row.",
    `HTTP/2 rows (h2 over TLS, h2c, gRPC unary): ${connections} streams in flight over 4 sessions (gRPC: 4 grpc-js channels), to an h2c stub upstream, against a bare node:http2 proxy of the same protocol in front of the same upstream.`,
    '',
  ].join('\n');
  const json = JSON.stringify({ meta, results: rows }, null, 2);
  fs.mkdirSync(path.join(root, 'bench/results'), { recursive: true });
  fs.writeFileSync(path.join(root, 'bench/results/latest.json'), `${json}\n`);
  fs.writeFileSync(path.join(root, 'bench/results/latest.md'), `${md}\n![bench chart](latest.svg)\n`);
  fs.writeFileSync(path.join(root, 'bench/results/latest.svg'), renderChart(rows, meta));
  if (flags.json) fs.writeFileSync(path.resolve(flags.json), `${json}\n`);
  process.stdout.write(md);
}

try {
  await main();
} finally {
  await stopAll();
}
