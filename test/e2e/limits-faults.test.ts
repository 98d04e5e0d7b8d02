// Limits through Redis faults, with the built CLI under steady load: a stalled, stopped or restarted
// Redis ends as 503 STORE_UNAVAILABLE (onError: deny) or a flagged allow, never as a limit it did
// not decide; no request keeps a concurrency slot it does not own, and a long one keeps its own.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../../src/authn/api-key.js';
import { type Serving, serveCli } from '../helpers/cli.js';
import { PrivateRedis, redisUrl } from '../helpers/redis.js';

const ADMIN_TOKEN = 'limits-faults-admin-token-0123456789abcdef';
const run = Date.now().toString(36);
let dir: string;
let upstream: Server;
let upstreamUrl: string;
/** Long requests the upstream has received so far. */
let held = 0;
const running: Serving[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Until the upstream has received `n` long requests in all: the proxy admitted them. */
async function heldReached(n: number): Promise<void> {
  const until = performance.now() + 10_000;
  while (held < n && performance.now() < until) await sleep(20);
  expect(held).toBeGreaterThanOrEqual(n);
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'pcs-limits-faults-'));
  // /hold/<ms> answers after that long: a long download, a long poll.
  upstream = createServer((req, res) => {
    req.resume();
    const hold = /^\/api\/hold\/(\d+)/.exec(req.url ?? '');
    if (hold) {
      held++;
      const t = setTimeout(() => res.end('held'), Number(hold[1]));
      res.on('close', () => clearTimeout(t));
      return;
    }
    res.end('ok');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await Promise.all(running.map((s) => s.stop()));
  upstream.closeAllConnections();
  await new Promise((r) => upstream.close(r));
});

/** A policy with one API key per tenant (key `<tenant>-secret`); `tiers` and `store` are YAML flow mappings. */
function policy(tenants: Record<string, string>, tiers: string, store: string): string {
  const keys = Object.entries(tenants).map(([t]) => `      - { id: ${t}-key, hash: "${hashApiKey(`${t}-secret`)}", tenant: ${t}, roles: [user] }`);
  const members = Object.entries(tenants)
    .map(([t, tier]) => `${t}: ${tier}`)
    .join(', ');
  return `version: 1
upstreams: { app: { url: "${upstreamUrl}" } }
authentication:
  apiKeys:
    keys:
${keys.join('\n')}
roles: { user: { permissions: ["api:use"] } }
tenants:
  tiers: ${tiers}
  members: { ${members} }
routes:
  - { name: api, match: { path: "/api/**" }, require: ["api:use"] }
store: ${store}
`;
}

async function serve(policyText: string): Promise<Serving> {
  const file = path.join(dir, `policy-${running.length}.yaml`);
  writeFileSync(file, policyText);
  const s = await serveCli(file, { PORTCULLIS_ADMIN_TOKEN: ADMIN_TOKEN });
  running.push(s);
  return s;
}

interface Answer {
  /** performance.now() when the request was sent. */
  readonly at: number;
  readonly status: number;
  readonly code: string | undefined;
  readonly ratelimit: string | undefined;
}

async function get(base: string, p: string, tenant: string, dispatcher?: Agent): Promise<Answer> {
  const at = performance.now();
  const res = await request(base + p, { headers: { 'x-api-key': `${tenant}-secret` }, ...(dispatcher === undefined ? {} : { dispatcher }) });
  const text = await res.body.text();
  let code: string | undefined;
  if (res.statusCode !== 200) code = (JSON.parse(text) as { code?: string }).code;
  const rl = res.headers.ratelimit;
  return { at, status: res.statusCode, code, ratelimit: typeof rl === 'string' ? rl : undefined };
}

/** `connections` clients each sending one request after the other until stopped (bounded by `maxMs`). */
function steadyLoad(base: string, tenant: string, connections: number, maxMs = 30_000): { answers: Answer[]; stop(): Promise<void> } {
  const answers: Answer[] = [];
  const agent = new Agent({ connections });
  const until = performance.now() + maxMs;
  let stopped = false;
  const loops = Array.from({ length: connections }, async () => {
    while (!stopped && performance.now() < until) {
      answers.push(await get(base, '/api/x', tenant, agent));
      await sleep(2);
    }
  });
  return {
    answers,
    async stop() {
      stopped = true;
      await Promise.all(loops);
      await agent.close();
    },
  };
}

const tally = (answers: readonly Answer[]): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const a of answers) {
    const k = a.code === undefined ? String(a.status) : `${a.status} ${a.code}`;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
};

async function usage(s: Serving, tenant: string): Promise<{ concurrency?: { inUse: number } }> {
  const r = await fetch(`${s.admin}/admin/tenants/${tenant}/usage`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  expect(r.status).toBe(200);
  return (await r.json()) as { concurrency?: { inUse: number } };
}

describe('limits under Redis faults, through the built CLI', () => {
  it('a request answered 503 while Redis was paused never keeps a concurrency slot: the tenant is served again once Redis is back', async () => {
    const server = await PrivateRedis.start();
    const admin = new Redis(server.url);
    try {
      const s = await serve(policy({ acme: 'one' }, '{ one: { concurrency: 1 } }', `{ url: "${server.url}", onError: deny }`));
      const load = steadyLoad(s.proxy, 'acme', 1);
      await sleep(500);
      await admin.call('CLIENT', 'PAUSE', '1500', 'ALL');
      const resumed = performance.now() + 1500;
      await sleep(1500 + 1500);
      await load.stop();
      const during = load.answers.filter((a) => a.at < resumed);
      const after = load.answers.filter((a) => a.at > resumed + 200);
      expect(tally(during)['503 STORE_UNAVAILABLE']).toBeGreaterThan(0);
      expect(after.length).toBeGreaterThan(5);
      expect(tally(after)).toEqual({ 200: after.length });
      expect(tally(load.answers)['429 CONCURRENCY_EXCEEDED']).toBeUndefined();
      expect((await usage(s, 'acme')).concurrency?.inUse).toBe(0);
    } finally {
      admin.disconnect();
      await server.stop();
    }
  }, 30_000);

  it('a client that gives up while its check waits on a paused Redis leaves no slot behind', async () => {
    const server = await PrivateRedis.start();
    const admin = new Redis(server.url);
    try {
      // A timeout long enough that the check is still awaited when Redis resumes and takes the slot.
      const s = await serve(policy({ acme: 'one' }, '{ one: { concurrency: 1 } }', `{ url: "${server.url}", onError: deny, timeout: 2s }`));
      expect((await get(s.proxy, '/api/x', 'acme')).status).toBe(200);
      await admin.call('CLIENT', 'PAUSE', '700', 'ALL');
      const ac = new AbortController();
      const gone = request(`${s.proxy}/api/x`, { headers: { 'x-api-key': 'acme-secret' }, signal: ac.signal }).catch(() => undefined);
      await sleep(200);
      ac.abort();
      await gone;
      await sleep(1000); // Redis resumed and answered the abandoned check
      const after = [];
      for (let i = 0; i < 3; i++) after.push((await get(s.proxy, '/api/x', 'acme')).status);
      expect(after).toEqual([200, 200, 200]);
      expect((await usage(s, 'acme')).concurrency?.inUse).toBe(0);
    } finally {
      admin.disconnect();
      await server.stop();
    }
  }, 30_000);

  it('a request that lasts longer than the slot TTL keeps its slot; the slot is freed when it ends and expires within the TTL when its replica is killed', async () => {
    const text = policy({ solo: 'one' }, '{ one: { concurrency: 1 } }', `{ url: "${redisUrl()}", prefix: "e2e:${run}:slots:", onError: deny, slotTtl: 2s }`);
    const [a, b] = [await serve(text), await serve(text)];
    const before = held;
    const long = get(a.proxy, '/api/hold/6000', 'solo');
    await heldReached(before + 1);
    const started = performance.now();
    // Checked until well past two TTLs: only renewal keeps the slot that long.
    for (const at of [500, 2700, 4500]) {
      await sleep(at - (performance.now() - started));
      const second = await get(b.proxy, '/api/x', 'solo');
      expect(second.status).toBe(429);
      expect(second.code).toBe('CONCURRENCY_EXCEEDED');
    }
    expect((await long).status).toBe(200);
    // Released when it ends (well before the TTL could have freed it).
    const ended = performance.now();
    let next = 0;
    while (next !== 200 && performance.now() - ended < 1000) {
      next = (await get(b.proxy, '/api/x', 'solo')).status;
      if (next !== 200) await sleep(50);
    }
    expect(next).toBe(200);

    // A replica that dies holding a slot: nobody renews it, so it expires within the TTL.
    // (B's release of the request just made can reach Redis after this one's check: then try again.)
    for (let tries = 0; held < before + 2 && tries < 20; tries++) {
      let refused = false;
      void get(a.proxy, '/api/hold/60000', 'solo').then(
        (r) => (refused = r.status !== 200),
        () => undefined,
      );
      const until = performance.now() + 5000;
      while (held < before + 2 && !refused && performance.now() < until) await sleep(20);
    }
    await heldReached(before + 2);
    expect((await get(b.proxy, '/api/x', 'solo')).code).toBe('CONCURRENCY_EXCEEDED');
    await a.stop(); // SIGKILL
    const killed = performance.now();
    let status = 0;
    while (status !== 200 && performance.now() - killed < 10_000) {
      status = (await get(b.proxy, '/api/x', 'solo')).status;
      if (status !== 200) await sleep(100);
    }
    expect(status).toBe(200);
    expect(performance.now() - killed).toBeLessThan(2000 + 1500); // the TTL, and time for a loaded machine
  }, 30_000);

  it('two replicas on one healthy Redis admit exactly the burst of 200 parallel requests, and never answer 503, round after round', async () => {
    const tenants: Record<string, string> = {};
    for (let i = 0; i < 5; i++) tenants[`t${i}`] = 'small';
    // store.timeout is how long Redis may stay silent; 250ms leaves a CPU-starved test machine's Redis
    // room to answer, while a timer that counts the proxy's own queueing still fires at that length.
    const text = policy(tenants, '{ small: { rate: 1/m, burst: 50 } }', `{ url: "${redisUrl()}", prefix: "e2e:${run}:burst:", onError: deny, timeout: 250ms }`);
    const [a, b] = [await serve(text), await serve(text)];
    for (const tenant of Object.keys(tenants)) {
      const agent = new Agent({ connections: 200 });
      const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => get(i % 2 ? a.proxy : b.proxy, '/api/x', tenant, agent)));
      await agent.close();
      expect(tally(answers)).toEqual({ 200: 50, '429 RATE_LIMITED': 150 });
    }
  }, 60_000);

  it('recovery from a stalled or restarted Redis never answers 429: 503 with onError deny, a flagged allow with allow', async () => {
    const server = await PrivateRedis.start();
    try {
      // 100000/s: every check leases 1000 tokens, the case where stale checks used to empty the bucket.
      const tiers = '{ big: { rate: 100000/s } }';
      const deny = await serve(policy({ acme: 'big' }, tiers, `{ url: "${server.url}", onError: deny }`));
      const allow = await serve(policy({ acme: 'big' }, tiers, `{ url: "${server.url}", onError: allow }`));
      const loads = [steadyLoad(deny.proxy, 'acme', 20), steadyLoad(allow.proxy, 'acme', 20)];
      await sleep(500);
      server.freeze(); // SIGSTOP: connections stay open, nothing is answered
      await sleep(5000);
      server.resume();
      await sleep(1500);
      await server.kill();
      await sleep(2000);
      await server.start(); // same port, empty: no scripts, full buckets
      const restarted = performance.now();
      await sleep(2500);
      await Promise.all(loads.map((l) => l.stop()));
      const [denied, allowed] = loads.map((l) => l.answers);
      const limited = [...denied!, ...allowed!].filter((x) => x.status === 429);
      expect(limited.map((x) => `${x.code} ${x.ratelimit}`)).toEqual([]);
      expect(tally(denied!)['503 STORE_UNAVAILABLE']).toBeGreaterThan(0);
      expect(Object.keys(tally(denied!)).sort()).toEqual(['200', '503 STORE_UNAVAILABLE']);
      expect(tally(allowed!)).toEqual({ 200: allowed!.length });
      // Both serve from Redis again once it is back (reconnecting takes up to a second).
      for (const answers of [denied!, allowed!]) {
        const tail = answers.filter((x) => x.at > restarted + 1500);
        expect(tail.length).toBeGreaterThan(10);
        expect(tally(tail)).toEqual({ 200: tail.length });
        expect(tail.every((x) => x.ratelimit !== undefined)).toBe(true);
      }
    } finally {
      await server.stop();
    }
  }, 40_000);

  it('with onError deny, leased tokens are spent for at most 100 ms after Redis stops answering; quotas and concurrency are refused at once', async () => {
    const server = await PrivateRedis.start();
    try {
      const s = await serve(
        policy(
          { leased: 'big', counted: 'quota', slotted: 'conc' },
          '{ big: { rate: 100000/s }, quota: { rate: 100000/s, quota: 10000000/day }, conc: { concurrency: 100 } }',
          `{ url: "${server.url}", onError: deny }`,
        ),
      );
      const loads = ['leased', 'counted', 'slotted'].map((t) => steadyLoad(s.proxy, t, 5));
      await sleep(800);
      await server.kill();
      const died = performance.now();
      await sleep(1500);
      await Promise.all(loads.map((l) => l.stop()));
      const [leased, counted, slotted] = loads.map((l) => l.answers.filter((x) => x.at > died));
      // Requests sent after Redis died: the leased tenant may use what its lease still holds, for
      // 100 ms after the grant (500 ms of slack for a loaded machine's event loop), then 503 only.
      expect(leased!.filter((x) => x.status === 200 && x.at > died + 600)).toEqual([]);
      expect(leased!.filter((x) => x.status === 200).length).toBeLessThanOrEqual(1000); // one lease at most
      expect(tally(leased!.filter((x) => x.at > died + 600))).toEqual({ '503 STORE_UNAVAILABLE': leased!.filter((x) => x.at > died + 600).length });
      // Quota and concurrency are never leased: nothing is admitted without Redis.
      for (const answers of [counted!, slotted!]) {
        expect(answers.length).toBeGreaterThan(5);
        expect(tally(answers)).toEqual({ '503 STORE_UNAVAILABLE': answers.length });
      }
    } finally {
      await server.stop();
    }
  }, 30_000);
});
