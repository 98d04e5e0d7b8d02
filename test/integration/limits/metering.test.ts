// Metered usage and token quotas through the real app, on real sockets, charged to a real Redis.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, startApp } from '../../../src/app.js';
import { hashApiKey } from '../../../src/authn/api-key.js';
import { createLogger } from '../../../src/observability/logger.js';
import { redisUrl } from '../../helpers/redis.js';
import { USAGE_CASES, type UsageUpstream, usageUpstream } from '../../helpers/usage-upstream.js';

let upstream: UsageUpstream;
let redis: Redis;
const apps: App[] = [];
const run = Date.now().toString(36);
let n = 0;

const policy = (prefix: string, tiers: string, usage = '{}') => `version: 1
upstreams:
  llm: { url: "${upstream.url}"${usage === '' ? '' : `, usage: ${usage}`} }
authentication:
  apiKeys:
    keys:
      - { id: acme-key, hash: "${hashApiKey('acme-secret')}", tenant: acme, roles: [user] }
roles: { user: { permissions: ["api:use"] } }
tenants:
  tiers:
${tiers}
  default: metered
routes:
  - name: llm
    match: { path: "/**" }
    require: ["api:use"]
store: { url: "${redisUrl()}", prefix: "${prefix}" }
`;

async function start(text: string): Promise<App> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-metering-'));
  writeFileSync(join(dir, 'p.yaml'), text);
  const app = await startApp({
    policyPath: join(dir, 'p.yaml'),
    listen: { host: '127.0.0.1', port: 0 },
    admin: null,
    drainMs: 0,
    demo: false,
    watch: false,
    logger: createLogger({ level: 'silent' }),
  });
  apps.push(app);
  return app;
}

const get = async (app: App, path: string) => {
  const res = await request(app.proxyUrl + path, { headers: { 'x-api-key': 'acme-secret' } });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, trailers: res.trailers, text };
};

/** The tenant's token spend in the store, once it stops changing at `expected` (charges are written after the response). */
async function spend(prefix: string, expected: number): Promise<number> {
  const key = `${prefix}{t:acme}:tokens`;
  const until = Date.now() + 5_000;
  for (;;) {
    const n = Number((await redis.hget(key, 'n')) ?? 0);
    if (n === expected || Date.now() > until) return n;
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  upstream = await usageUpstream();
  redis = new Redis(redisUrl());
});

afterAll(async () => {
  for (const a of apps) await a.shutdown();
  await upstream.close();
  redis.disconnect();
});

const freshPrefix = (): string => `it:${run}:m${++n}:`;

describe('metered usage', () => {
  it('charges what each response reports, header, trailer, JSON or event stream, and 0 when it reports nothing', async () => {
    const prefix = freshPrefix();
    const app = await start(policy(prefix, '    metered: { rate: 1000/s }'));
    let total = 0;
    for (const [path, tokens] of Object.entries(USAGE_CASES)) {
      const r = await get(app, path);
      expect(r.status, path).toBe(200);
      expect(r.headers['x-usage-tokens'], `${path} leaks the usage header`).toBeUndefined();
      expect(r.trailers['x-usage-tokens'], `${path} leaks the usage trailer`).toBeUndefined();
      total += tokens;
      expect(await spend(prefix, total), `after ${path}`).toBe(total);
    }
    // The bodies reached the client whole.
    expect((await get(app, '/anthropic-sse')).text).toContain('message_stop');
    expect((await get(app, '/trailer')).text).toBe('trailer body');
  });

  it("writes the tokens charged into each request's audit event, capped by perRequest, 0 when nothing was reported", async () => {
    const prefix = freshPrefix();
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-metering-audit-'));
    const file = join(dir, 'audit.ndjson');
    const app = await start(`${policy(prefix, '    metered: { tokens: { perRequest: 60 } }')}audit: { sinks: [{ file: { path: "${file}", fsync: always } }] }\n`);
    await get(app, '/anthropic-sse');
    await get(app, '/tokens/80');
    await get(app, '/plain');
    const until = Date.now() + 5_000;
    let events: { request: { path: string }; response: { tokens: number | null } }[] = [];
    while (Date.now() < until) {
      events = (existsSync(file) ? readFileSync(file, 'utf8') : '')
        .split('\n')
        .filter((l) => l.includes('"type":"request"'))
        .map((l) => JSON.parse(l));
      if (events.length >= 3) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(events.map((e) => [e.request.path, e.response.tokens])).toEqual([
      ['/anthropic-sse', 55],
      ['/tokens/80', 60],
      ['/plain', 0],
    ]);
  });

  it('a client that leaves mid-stream is charged what the stream reported until then', async () => {
    const prefix = freshPrefix();
    const app = await start(policy(prefix, '    metered: { rate: 1000/s }'));
    const res = await request(`${app.proxyUrl}/held-stream`, { headers: { 'x-api-key': 'acme-secret' } });
    const seen: string[] = [];
    for await (const chunk of res.body) {
      seen.push(String(chunk));
      if (seen.join('').includes('message_delta')) break; // leaves: destroys the body
    }
    expect(await spend(prefix, 11)).toBe(11); // input 7 + output 4
  });

  it('an upstream without usage is not metered: its usage header reaches the client', async () => {
    const prefix = freshPrefix();
    const app = await start(policy(prefix, '    metered: { rate: 1000/s }', ''));
    const r = await get(app, '/header');
    expect(r.headers['x-usage-tokens']).toBe('12');
    await new Promise((r) => setTimeout(r, 100));
    expect(await redis.hget(`${prefix}{t:acme}:tokens`, 'n')).toBeNull();
  });

  it('a configured header name is read and stripped, and json: off reads no body', async () => {
    const prefix = freshPrefix();
    const app = await start(policy(prefix, '    metered: { rate: 1000/s }', '{ header: X-Cost, json: off }'));
    const r = await get(app, '/openai-json');
    expect(JSON.parse(r.text).usage.total_tokens).toBe(15);
    await new Promise((r) => setTimeout(r, 100));
    expect(await redis.hget(`${prefix}{t:acme}:tokens`, 'n')).toBeNull();
  });
});

describe('token quotas', () => {
  it('admits while the spend is under quota, refuses with 429 TOKEN_QUOTA_EXCEEDED and the token headers, and admits again once the window resets', async () => {
    const prefix = freshPrefix();
    const app = await start(policy(prefix, '    metered: { tokens: { quota: 40/day } }'));
    const first = await get(app, '/anthropic-json'); // 30
    expect(first.status).toBe(200);
    expect(first.headers['ratelimit-policy']).toBe('"tokens";q=40;w=86400');
    expect(await spend(prefix, 30)).toBe(30);
    expect((await get(app, '/header')).status).toBe(200); // 30 < 40: admitted, and the spend overshoots to 42
    expect(await spend(prefix, 42)).toBe(42);
    const refused = await get(app, '/header');
    expect(refused.status).toBe(429);
    expect(JSON.parse(refused.text).code).toBe('TOKEN_QUOTA_EXCEEDED');
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(86_400);
    expect(refused.headers['ratelimit-policy']).toBe('"tokens";q=40;w=86400');
    expect(refused.headers.ratelimit).toBe(`"tokens";r=0;t=${refused.headers['retry-after']}`);
    // A refused request is charged nothing.
    expect(await spend(prefix, 42)).toBe(42);
    // The window rolls over (made to look as if it had been counted in an earlier day).
    await redis.hset(`${prefix}{t:acme}:tokens`, 'w', 0);
    expect((await get(app, '/header')).status).toBe(200);
    expect(await spend(prefix, 12)).toBe(12);
  });

  it('perRequest caps what one response is charged', async () => {
    const prefix = freshPrefix();
    const app = await start(policy(prefix, '    metered: { tokens: { quota: 1000/day, perRequest: 25 } }'));
    await get(app, '/tokens/100');
    expect(await spend(prefix, 25)).toBe(25);
    await get(app, '/tokens/5');
    expect(await spend(prefix, 30)).toBe(30);
  });
});
