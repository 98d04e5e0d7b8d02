// `portcullis bench`: load-tests one route of a policy with autocannon. Portcullis runs in this
// process on loopback with the policy plus an in-memory overlay (upstreams → a stub, a temporary
// credential for the route); autocannon runs in a child process, the stub in a worker thread.

import { fork } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { type App, startApp } from '../app.js';
import type { Plan } from '../core/plan.js';
import { buildPlan } from '../engine/validate.js';
import { createLogger } from '../observability/logger.js';
import { formatDiagnostic, PolicyError } from '../policy/diagnostics.js';
import type { LoadedPolicy } from '../policy/load.js';
import { formatPath } from '../policy/source-map.js';
import { parseDuration } from '../policy/values.js';
import { parseRedisUrl } from '../redis-url.js';
import type { CompiledRoute } from '../routing/route.js';
import { LOAD_CHILD_ENV, type LoadMessage, type LoadOptions } from './bench-load.js';
import { type BenchRequest, benchOverlay, pickRoute } from './bench-overlay.js';
import { type AutocannonResult, type BenchReport, formatReport, type Measurement, measurementOf } from './bench-report.js';
import { type Stub, startStub } from './bench-stub.js';
import { type CliIo, EXIT, parseFlags, UsageError } from './command.js';

export const usage = `Usage: portcullis bench --policy PATH [--route NAME] [--connections N] [--duration 10s] [--rate R]
                       [--upstream URL] [--compare-direct] [--tenant T] [--use-policy-store] [--json FILE]

Load-tests one route of a policy. Portcullis runs in this process on loopback with the policy as
written (routes, authentication, roles, limits and tenant tiers), except:
  - every upstream points at a built-in stub (or --upstream URL);
  - the route gets a temporary credential it accepts (an API key, or a JWT from a generated issuer)
    for tenant T, with a role granting what the route requires;
  - limits are counted in a private in-memory store that starts at zero: store.url is not used,
    so no real tenant's rate, quota or concurrency is spent and nothing is written to its Redis;
  - audit events go to one file in a private temporary directory, deleted after the run: the
    policy's sinks (files, stdout, webhooks, Redis streams) and spool are not used.
Nothing is written outside that directory except the --json FILE you name.
Limits still apply to the bench credential, so 429s show up in the results; the report says which
limits apply (T's tier and the route's limits).

Options:
  --policy PATH        policy file or directory (default ./policies)
  --route NAME         route to load (default: the first route that is not public)
  --connections N      concurrent connections (default 10)
  --duration D         how long to run, e.g. 10s (default 10s)
  --rate R             offered requests per second across all connections (default: as fast as possible)
  --upstream URL       send the traffic to this upstream instead of the built-in stub
  --compare-direct     also load the upstream directly and print the overhead ratio
  --tenant T           tenant of the generated credential and of {tenantParam} (default bench). Its
                       limits are the tier the policy gives T (tenants.members, else tenants.default),
                       counted from zero in the private store
  --use-policy-store   count limits in the policy's store.url instead (a warning is printed): the run
                       spends T's real rate, quota and concurrency, shared with live traffic
  --json FILE          also write the results as JSON
  -h, --help

Progress goes to stderr once a second; the report goes to stdout. Every count in it comes from one
tally of the responses received: the status/reason lines add up to the requests column.
Exit 0 when responses were received, 1 when none were or the policy is invalid, 2 on a usage error.
`;

interface Flags {
  readonly policy: string;
  readonly route: string | undefined;
  readonly connections: number;
  readonly durationSeconds: number;
  readonly rate: number | undefined;
  readonly upstream: string | undefined;
  readonly compareDirect: boolean;
  readonly tenant: string;
  readonly usePolicyStore: boolean;
  readonly json: string | undefined;
}

function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new UsageError(`--${name} must be a positive integer (got "${value}")`);
  return n;
}

function flags(argv: readonly string[]): Flags {
  const { values, positionals } = parseFlags(argv, {
    policy: { type: 'string' },
    route: { type: 'string' },
    connections: { type: 'string' },
    duration: { type: 'string' },
    rate: { type: 'string' },
    upstream: { type: 'string' },
    'compare-direct': { type: 'boolean' },
    tenant: { type: 'string' },
    'use-policy-store': { type: 'boolean' },
    json: { type: 'string' },
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  let durationMs: number;
  try {
    durationMs = parseDuration(values.duration ?? '10s');
  } catch {
    throw new UsageError(`--duration expects a duration such as 10s (got "${values.duration}")`);
  }
  if (durationMs < 1_000) throw new UsageError('--duration must be at least 1s');
  if (values.upstream !== undefined && !/^https?:\/\/[^/\s]+\/?$/.test(values.upstream)) {
    throw new UsageError(`--upstream expects an origin such as http://127.0.0.1:3000 (got "${values.upstream}")`);
  }
  return {
    policy: values.policy ?? './policies',
    route: values.route,
    connections: positiveInt('connections', values.connections, 10),
    durationSeconds: Math.round(durationMs / 1000),
    rate: values.rate === undefined ? undefined : positiveInt('rate', values.rate, 0),
    upstream: values.upstream?.replace(/\/$/, ''),
    compareDirect: values['compare-direct'] === true,
    tenant: values.tenant ?? 'bench',
    usePolicyStore: values['use-policy-store'] === true,
    json: values.json,
  };
}

/**
 * A stand-in for an unset variable that feeds only something bench replaces: upstream URLs, the
 * audit sinks, and store.url unless the policy's store is asked for. The default policy's
 * DEMO_UPSTREAM, or a REDIS_URL bench will not connect to, need not be set. Undefined: bench uses it.
 */
function standIn(path: string, usePolicyStore: boolean): string | undefined {
  if (/^upstreams\.[^.]+\.(url|targets\[\d+\])$/.test(path)) return 'http://127.0.0.1:9';
  if (path === 'store.url' && !usePolicyStore) return 'redis://127.0.0.1:9';
  if (/^audit\.sinks\[\d+\]\.redisStream\.url$/.test(path)) return 'redis://127.0.0.1:9';
  if (/^audit\.sinks\[\d+\]\.webhook\.url$/.test(path)) return 'http://127.0.0.1:9';
  if (/^audit\.sinks\[\d+\]\./.test(path)) return 'unset';
  return undefined;
}

/** The policy as bench runs it: unset variables that feed only what bench replaces get a stand-in. */
async function load(path: string, env: NodeJS.ProcessEnv, usePolicyStore: boolean, io: CliIo): Promise<{ loaded: LoadedPolicy; plan: Plan }> {
  const names = new Set<string>();
  const built = await buildPlan(path, {
    env,
    unsetEnv: (at, name) => {
      const value = standIn(formatPath(at), usePolicyStore);
      if (value !== undefined) names.add(name);
      return value;
    },
  });
  if (names.size > 0) {
    const list = [...names];
    io.stderr(`bench: ${list.join(', ')} ${list.length === 1 ? 'is' : 'are'} not set; only what bench replaces uses ${list.length === 1 ? 'it' : 'them'} (upstream URLs, the store, audit sinks)\n`);
  }
  return { loaded: built.loaded, plan: built.plan };
}

/** Runs autocannon in a child process; progress lines go to stderr. */
function runLoad(label: string, options: LoadOptions, io: CliIo): Promise<Measurement> {
  const child = fork(new URL('./bench-load.js', import.meta.url), [], { env: { ...process.env, [LOAD_CHILD_ENV]: '1' }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  child.send(options);
  let seconds = 0;
  let printed = -1;
  return new Promise<Measurement>((resolve, reject) => {
    child.on('message', (msg: LoadMessage) => {
      // autocannon ticks once a second, and once more as it finishes (the `done` line says that total).
      if (msg.type === 'tick') {
        if (seconds === options.durationSeconds) return;
        seconds++;
        if (msg.requests === printed) return;
        printed = msg.requests;
        const statuses = Object.entries(msg.statuses)
          .map(([s, n]) => `${s}: ${n.toLocaleString('en-US')}`)
          .join('  ');
        io.stderr(
          `bench: ${label} ${seconds}/${options.durationSeconds}s  ${msg.requests.toLocaleString('en-US')} requests  ${Math.round(msg.requests / seconds).toLocaleString('en-US')} req/s  ${statuses}\n`,
        );
      } else if (msg.type === 'done') {
        const m = measurementOf(msg.result as AutocannonResult, msg.latencyMs, msg.requests, msg.tally);
        io.stderr(`bench: ${label} finished: ${m.requests.toLocaleString('en-US')} requests\n`);
        resolve(m);
        child.kill();
      } else {
        reject(new Error(`load generator failed: ${msg.message}`));
        child.kill();
      }
    });
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the load generator exited (${code}) before finishing`)));
  });
}

/** Where --use-policy-store sends the counters, by host only: a store URL may carry a password. */
function storeWarning(storeUrl: string | undefined, tenant: string): string {
  if (storeUrl === undefined) return 'bench: --use-policy-store: the policy has no store.url, so limits are counted in memory anyway\n';
  const target = parseRedisUrl(storeUrl);
  const hosts = 'problem' in target ? "the policy's store" : target.kind === 'server' ? new URL(target.url).host : target.hosts.map((h) => `${h.host}:${h.port}`).join(',');
  return (
    `bench: WARNING: --use-policy-store: limits are counted in the policy's store (${hosts}), shared with live traffic.\n` +
    `bench: WARNING: this run spends tenant "${tenant}"'s real rate, quota and concurrency and writes counters there.\n`
  );
}

const perSecond = (ratePerMs: number): string => `${Number((ratePerMs * 1000).toFixed(3))}/s`;

/** The tenant's tier and the route's limits, as they apply to the bench credential. */
function limitsFor(plan: Plan, route: CompiledRoute, tenant: string): BenchReport['tenant'] {
  const limits = plan.limits;
  if (route.public || limits === undefined) return { name: tenant, tier: undefined, limits: [] };
  const lines: string[] = [];
  const tier = limits.members.get(tenant) ?? limits.defaultTier;
  if (tier !== undefined) {
    const parts: string[] = [];
    if (tier.ratePerMs !== undefined) parts.push(`${perSecond(tier.ratePerMs)} burst ${tier.burst}`);
    if (tier.quota !== undefined) parts.push(`quota ${tier.quota.limit}/${tier.quota.window}`);
    if (tier.concurrency !== undefined) parts.push(`concurrency ${tier.concurrency}`);
    const why = limits.members.has(tenant) ? 'tenants.members' : 'tenants.default';
    lines.push(`tier "${tier.name}" (${why}): ${parts.length > 0 ? parts.join(', ') : 'no limits'}`);
  }
  for (const b of limits.routes.get(route.index) ?? []) {
    lines.push(`route by ${b.by}: ${perSecond(b.ratePerMs)} burst ${b.burst}${b.cost !== 1 ? ` cost ${b.cost}` : ''}`);
  }
  return { name: tenant, tier: tier?.name, limits: lines };
}

function loadOptions(base: string, request: BenchRequest, f: Flags): LoadOptions {
  return {
    url: `${base}${request.path}`,
    method: request.method,
    headers: request.headers,
    body: request.body,
    connections: f.connections,
    durationSeconds: f.durationSeconds,
    overallRate: f.rate,
  };
}

export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  const f = flags(argv);
  let loaded: LoadedPolicy;
  let plan: Plan;
  let route: ReturnType<typeof pickRoute>;
  try {
    ({ loaded, plan } = await load(f.policy, io.env, f.usePolicyStore, io));
    route = pickRoute(plan.routes, f.route);
  } catch (err) {
    if (!(err instanceof PolicyError)) {
      io.stderr(`portcullis bench: ${(err as Error).message}\n`);
      return EXIT.failed;
    }
    for (const d of err.diagnostics) io.stderr(`${formatDiagnostic(d)}\n`);
    io.stderr(`portcullis bench: the policy at ${f.policy} is invalid\n`);
    return EXIT.failed;
  }

  const work = await mkdtemp(join(tmpdir(), 'portcullis-bench-'));
  let stub: Stub | undefined;
  let app: App | undefined;
  try {
    if (!f.upstream) stub = await startStub();
    const upstreamUrl = f.upstream ?? stub!.url;
    const storeUrl = plan.limits?.storeUrl;
    const usePolicyStore = f.usePolicyStore && storeUrl !== undefined;
    if (f.usePolicyStore) io.stderr(storeWarning(storeUrl, f.tenant));
    const { doc, request } = await benchOverlay(loaded.document, route, {
      upstreamUrl,
      tenant: f.tenant,
      durationMs: f.durationSeconds * 1000,
      workDir: work,
      usePolicyStore,
    });
    // The overlay holds resolved secrets and a credential: a private directory, removed afterwards.
    await writeFile(join(work, 'policy.yaml'), stringify(doc), { mode: 0o600 });
    const logger = createLogger({ level: io.env.LOG_LEVEL ?? 'error', destination: { write: (line: string) => void io.stderr(line) } });
    app = await startApp({
      policyPath: join(work, 'policy.yaml'),
      listen: { host: '127.0.0.1', port: 0 },
      admin: null,
      drainMs: 1_000,
      demo: false,
      logger,
      watch: false,
    });

    let direct: Measurement | undefined;
    if (f.compareDirect) direct = await runLoad('direct', loadOptions(upstreamUrl, request, f), io);
    const proxy = await runLoad('portcullis', loadOptions(app.proxyUrl.replace(/\/$/, ''), request, f), io);

    const report: BenchReport = {
      policy: f.policy,
      route: route.name,
      request: { method: request.method, path: request.path, credential: request.credential },
      tenant: limitsFor(plan, route, f.tenant),
      isolation: { store: usePolicyStore ? 'policy' : 'private', audit: loaded.document.audit === undefined ? 'none' : 'temporary' },
      connections: f.connections,
      durationSeconds: f.durationSeconds,
      rate: f.rate,
      upstream: f.upstream ?? 'built-in stub',
      proxy,
      ...(direct ? { direct, overheadRatio: proxy.requestsPerSecond > 0 ? direct.requestsPerSecond / proxy.requestsPerSecond : Infinity } : {}),
    };
    io.stdout(formatReport(report));
    if (f.json) await writeFile(f.json, `${JSON.stringify(report, null, 2)}\n`);
    return proxy.requests > 0 ? EXIT.ok : EXIT.failed;
  } catch (err) {
    if (err instanceof PolicyError) {
      for (const d of err.diagnostics) io.stderr(`${formatDiagnostic(d)}\n`);
      io.stderr('portcullis bench: the policy with the bench credential does not compile\n');
    } else {
      io.stderr(`portcullis bench: ${(err as Error).message}\n`);
    }
    return EXIT.failed;
  } finally {
    await app?.shutdown();
    await stub?.close();
    await rm(work, { recursive: true, force: true });
  }
}
