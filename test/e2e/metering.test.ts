// Metered usage with the built CLI: two replicas on one Redis charge exactly what the upstream
// reported, in total, under parallel load; the admin API reports the spend and latency percentiles.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../../src/authn/api-key.js';
import { type Serving, serveCli } from '../helpers/cli.js';
import { redisUrl } from '../helpers/redis.js';
import { type UsageUpstream, usageUpstream } from '../helpers/usage-upstream.js';

const ADMIN_TOKEN = 'metering-admin-token-0123456789abcdef0123';
const run = Date.now().toString(36);
let upstream: UsageUpstream;
let redis: Redis;
const running: Serving[] = [];

beforeAll(async () => {
  upstream = await usageUpstream();
  redis = new Redis(redisUrl());
});

afterAll(async () => {
  await Promise.all(running.map((s) => s.stop()));
  await upstream.close();
  redis.disconnect();
});

describe('metering across replicas', () => {
  it('two replicas on one Redis charge the exact total the upstream reported, and the admin API shows it', async () => {
    const prefix = `e2e:${run}:meter:`;
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pcs-metering-'));
    const file = path.join(dir, 'policy.yaml');
    writeFileSync(
      file,
      `version: 1
upstreams:
  llm: { url: "${upstream.url}", usage: {} }
authentication:
  apiKeys:
    keys:
      - { id: acme-key, hash: "${hashApiKey('acme-secret')}", tenant: acme, roles: [user] }
roles: { user: { permissions: ["api:use"] } }
tenants:
  tiers: { metered: { tokens: { quota: 100000000/month } } }
  default: metered
routes:
  - { name: llm, match: { path: "/**" }, require: ["api:use"] }
store: { url: "${redisUrl()}", prefix: "${prefix}" }
`,
    );
    const [a, b] = await Promise.all([serveCli(file, { PORTCULLIS_ADMIN_TOKEN: ADMIN_TOKEN }), serveCli(file, { PORTCULLIS_ADMIN_TOKEN: ADMIN_TOKEN })]);
    running.push(a, b);
    const agent = new Agent({ connections: 16 });
    const paths = ['/openai-sse', '/anthropic-sse', '/openai-json', '/anthropic-json', '/header', '/trailer', '/plain'];
    const reported: Record<string, number> = { '/openai-sse': 10, '/anthropic-sse': 55, '/openai-json': 15, '/anthropic-json': 30, '/header': 12, '/trailer': 20, '/plain': 0 };
    let expected = 0;
    const calls = Array.from({ length: 210 }, (_, i) => {
      const p = i % 3 === 0 ? `/tokens/${i}` : paths[i % paths.length]!;
      expected += p.startsWith('/tokens/') ? i : reported[p]!;
      return request((i % 2 ? a : b).proxy + p, { headers: { 'x-api-key': 'acme-secret' }, dispatcher: agent }).then(async (r) => {
        await r.body.text();
        return r.statusCode;
      });
    });
    const statuses = await Promise.all(calls);
    await agent.close();
    expect(statuses.every((s) => s === 200)).toBe(true);
    const key = `${prefix}{t:acme}:tokens`;
    const until = Date.now() + 10_000;
    let spent = 0;
    while (Date.now() < until) {
      spent = Number((await redis.hget(key, 'n')) ?? 0);
      if (spent >= expected) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(spent).toBe(expected);
    const usage = (await (await fetch(`${a.admin}/admin/tenants/acme/usage`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as {
      tokens: { window: string; used: number; limit: number; remaining: number };
      tokensByDay: { day: string; tokens: number }[];
      latency: { count: number; p50Ms: number; p95Ms: number; p99Ms: number; windowSeconds: number };
    };
    expect(usage.tokens).toEqual({ window: 'month', used: expected, limit: 100_000_000, remaining: 100_000_000 - expected });
    expect(usage.tokensByDay.reduce((s, d) => s + d.tokens, 0)).toBe(expected);
    // Latency is the answering replica's own: the half of the requests it served.
    expect(usage.latency.count).toBe(105);
    expect(usage.latency.p50Ms).toBeGreaterThan(0);
    expect(usage.latency.p99Ms).toBeGreaterThanOrEqual(usage.latency.p50Ms);
  });
});
