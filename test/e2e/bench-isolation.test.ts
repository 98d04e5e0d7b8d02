// `portcullis bench` must not spend anything real: a policy whose store is a real Redis and whose
// audit writes files, benched from a working directory of its own, leaves the Redis, the working
// directory and the policy directory as they were. Built CLI, real redis-server.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAIN, type Ran, requireBuiltCli, root } from '../helpers/cli.js';
import { PrivateRedis } from '../helpers/redis.js';

const PREFIX = 'benchprod:';
const POLICY = `version: 1
upstreams:
  app: { url: http://127.0.0.1:9 }
authentication:
  apiKeys: {}
roles:
  reader: { permissions: [reports:read] }
tenants:
  tiers:
    gold: { rate: 50/s, burst: 50, quota: 100000/day, concurrency: 20 }
    free: { rate: 5/s, burst: 5, quota: 1000/day }
  default: free
  members: { acme: gold }
routes:
  - name: reports
    match: { methods: [GET], path: "/v1/tenants/{tenant}/reports/**" }
    require: [reports:read]
    tenantParam: tenant
    limits:
      - { by: principal, rate: 100/s, burst: 100 }
store:
  url: env:BENCH_E2E_REDIS_URL
  prefix: "${PREFIX}"
audit:
  chain: true
  sinks:
    - file:
        path: ./audit.ndjson
    - stdout: {}
  spool: ./audit-spool
`;

let redis: PrivateRedis;
let probe: Redis;
let work: string;
let cwd: string;
let policyDir: string;

/** The built CLI run from `dir` (a user's working directory), not from the repository root. */
function benchIn(dir: string, args: readonly string[], withRedisUrl = true): Promise<Ran> {
  const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'error', BENCH_E2E_REDIS_URL: redis.url };
  if (!withRedisUrl) delete env.BENCH_E2E_REDIS_URL;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(root, MAIN), 'bench', ...args], { cwd: dir, env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** What a bench could have left in the Redis: keys, and connections made to it at all. */
async function redisState(): Promise<{ keys: string[]; dbsize: number; connections: number }> {
  const info = await probe.info('stats');
  return {
    keys: (await probe.keys('*')).sort(),
    dbsize: await probe.dbsize(),
    connections: Number(/total_connections_received:(\d+)/.exec(info)?.[1]),
  };
}

interface Report {
  tenant: { name: string; tier?: string; limits: string[] };
  isolation: { store: string; audit: string };
  proxy: { requests: number; statuses: { status: string; code: string; count: number }[] };
}

beforeAll(async () => {
  requireBuiltCli();
  redis = await PrivateRedis.start();
  probe = new Redis(redis.url);
  // A real tenant with history: the bench must not add to it.
  await probe.set(`${PREFIX}existing`, 'live traffic');
  work = mkdtempSync(join(tmpdir(), 'portcullis-bench-iso-'));
  cwd = join(work, 'cwd');
  policyDir = join(work, 'policies');
  for (const d of [cwd, policyDir, join(work, 'out')]) mkdirSync(d);
  writeFileSync(join(policyDir, 'policy.yaml'), POLICY);
});

afterAll(async () => {
  probe?.disconnect();
  await redis?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('portcullis bench isolation', () => {
  it("leaves the policy's Redis untouched, writes nothing beside the user, and reports counts that agree", async () => {
    const before = await redisState();
    const json = join(work, 'out', 'isolated.json');
    const r = await benchIn(cwd, ['--policy', policyDir, '--tenant', 'acme', '--duration', '1s', '--connections', '2', '--json', json]);
    expect(r.stderr).not.toMatch(/WARNING/);
    expect(r.code, r.stderr).toBe(0);
    // Not one connection to the policy's Redis, so not one key or counter.
    expect(await redisState()).toEqual(before);
    expect(before.keys).toEqual([`${PREFIX}existing`]);
    // Nothing in the working directory or beside the policy: audit went to the bench's own directory.
    expect(readdirSync(cwd)).toEqual([]);
    expect(readdirSync(policyDir)).toEqual(['policy.yaml']);
    // The audit sinks were replaced: no event on stdout either.
    expect(r.stdout).not.toContain('"type":"request"');

    const out = JSON.parse(readFileSync(json, 'utf8')) as Report;
    expect(out.isolation).toEqual({ store: 'private', audit: 'temporary' });
    // The real tenant's tier is exercised, from zero, in the private store.
    expect(out.tenant).toEqual({ name: 'acme', tier: 'gold', limits: ['tier "gold" (tenants.members): 50/s burst 50, quota 100000/day, concurrency 20', 'route by principal: 100/s burst 100'] });
    expect(r.stdout).toContain('store: private, in memory');
    expect(r.stdout).toContain('audit: to a temporary file, deleted after the run');
    const total = out.proxy.statuses.reduce((n, s) => n + s.count, 0);
    expect(total).toBe(out.proxy.requests);
    expect(r.stderr).toContain(`bench: portcullis finished: ${out.proxy.requests.toLocaleString('en-US')} requests`);
    expect(r.stdout).toContain(`they add up to the ${out.proxy.requests.toLocaleString('en-US')} requests above`);
  });

  it('gives the bench tenant the tier the policy gives a tenant it does not list, and needs no store URL', async () => {
    const json = join(work, 'out', 'default.json');
    const r = await benchIn(cwd, ['--policy', policyDir, '--duration', '1s', '--connections', '1', '--rate', '20', '--json', json], false);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('bench: BENCH_E2E_REDIS_URL is not set; only what bench replaces uses it (upstream URLs, the store, audit sinks)');
    const out = JSON.parse(readFileSync(json, 'utf8')) as Report;
    expect(out.tenant.name).toBe('bench');
    expect(out.tenant.tier).toBe('free');
    expect(r.stdout).toContain('tenant "bench", tier "free"');
    expect(readdirSync(cwd)).toEqual([]);
  });

  it("spends the policy's store only with --use-policy-store, and says so loudly", async () => {
    const before = await redisState();
    const json = join(work, 'out', 'shared.json');
    const r = await benchIn(cwd, ['--policy', policyDir, '--tenant', 'acme', '--use-policy-store', '--duration', '1s', '--connections', '1', '--rate', '20', '--json', json]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/WARNING: --use-policy-store: limits are counted in the policy's store \(127\.0\.0\.1:\d+\)/);
    expect(r.stderr).toContain('spends tenant "acme"\'s real rate, quota and concurrency');
    expect(r.stdout).toContain("THE POLICY'S STORE (--use-policy-store)");
    const after = await redisState();
    expect(after.keys.filter((k) => k.includes('acme')).length).toBeGreaterThan(0);
    expect(after.dbsize).toBeGreaterThan(before.dbsize);
    expect((JSON.parse(readFileSync(json, 'utf8')) as Report).isolation.store).toBe('policy');
    // Audit stays private even then.
    expect(readdirSync(cwd)).toEqual([]);
    expect(readdirSync(policyDir)).toEqual(['policy.yaml']);
  });
});
