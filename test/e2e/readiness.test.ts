// /readyz says whether this instance can serve its policy: with the limits store gone and
// `store.onError: deny` every limited request is a 503, so the instance leaves rotation (503, and
// says why) until the store is back; with `onError: allow` it stays in rotation but says degraded.
// Through the built CLI, against a redis-server of the test's own that is stopped and restarted.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../../src/authn/api-key.js';
import { type Serving, serveCli } from '../helpers/cli.js';
import { PrivateRedis } from '../helpers/redis.js';
import { type OkUpstream, okUpstream } from '../helpers/upstream.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let dir: string;
let upstream: OkUpstream;
let upstreamUrl: string;

interface Ready {
  status: number;
  body: { status: string; policy?: string; reasons?: string[] };
}
const readyz = async (s: Serving): Promise<Ready> => {
  const res = await fetch(`${s.admin}/readyz`);
  return { status: res.status, body: (await res.json()) as Ready['body'] };
};

/** Polls /readyz until `want` holds (the store reconnects with a backoff of up to a second). */
async function readyzUntil(s: Serving, want: (r: Ready) => boolean, ms = 20_000): Promise<Ready> {
  const until = Date.now() + ms;
  let last = await readyz(s);
  while (!want(last)) {
    if (Date.now() > until) throw new Error(`/readyz stayed ${JSON.stringify(last)}`);
    await sleep(100);
    last = await readyz(s);
  }
  return last;
}

const api = async (s: Serving): Promise<{ status: number; code?: string | undefined }> => {
  const res = await fetch(`${s.proxy}/api/x`, { headers: { 'x-api-key': 'acme-secret' } });
  const text = await res.text();
  return res.status === 200 ? { status: 200 } : { status: res.status, code: (JSON.parse(text) as { code?: string }).code };
};

function policy(redis: PrivateRedis, onError: 'allow' | 'deny'): string {
  const file = path.join(dir, `policy-${onError}.yaml`);
  writeFileSync(
    file,
    `version: 1
upstreams: { app: { url: "${upstreamUrl}" } }
authentication:
  apiKeys:
    keys:
      - { id: acme-key, hash: "${hashApiKey('acme-secret')}", tenant: acme, roles: [user] }
roles: { user: { permissions: ["api:use"] } }
tenants:
  # A quota is never leased: every request asks the store.
  tiers: { pro: { rate: 1000/s, burst: 1000, quota: 1000000/day } }
  members: { acme: pro }
routes:
  - { name: api, match: { path: "/api/**" }, require: ["api:use"] }
store: { url: "${redis.url}", onError: ${onError}, timeout: 200ms }
`,
  );
  return file;
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'pcs-readiness-'));
  upstream = await okUpstream();
  upstreamUrl = upstream.url;
});

afterAll(async () => {
  await upstream.close();
});

describe('/readyz and the limits store', () => {
  it('answers 503 with the reason while the store is down and onError is deny, and 200 again once it is back', async () => {
    const redis = await PrivateRedis.start();
    const serving = await serveCli(policy(redis, 'deny'));
    try {
      const up = await readyz(serving);
      expect(up.status).toBe(200);
      expect(up.body).toMatchObject({ status: 'ready' });
      expect(await api(serving)).toEqual({ status: 200 });

      await redis.kill();
      expect(await api(serving)).toEqual({ status: 503, code: 'STORE_UNAVAILABLE' });
      const down = await readyzUntil(serving, (r) => r.status !== 200);
      expect(down.status).toBe(503);
      expect(down.body.status).toBe('not ready');
      expect(down.body.policy).toMatch(/^[0-9a-f]{64}$/);
      expect(down.body.reasons).toEqual([expect.stringMatching(/limits store \(Redis\) is not reachable and store\.onError is deny/)]);
      // Out of rotation it gets no requests: readiness must find the store again by itself.
      await redis.start();
      const back = await readyzUntil(serving, (r) => r.status === 200);
      expect(back.body).toEqual({ status: 'ready', policy: down.body.policy });
      expect(await api(serving)).toEqual({ status: 200 });
    } finally {
      await serving.stop();
      await redis.stop();
    }
  });

  it('stays 200 but says degraded while the store is down and onError is allow', async () => {
    const redis = await PrivateRedis.start();
    const serving = await serveCli(policy(redis, 'allow'));
    try {
      expect((await readyz(serving)).body.status).toBe('ready');
      await redis.kill();
      const degraded = await readyzUntil(serving, (r) => r.body.status !== 'ready');
      expect(degraded.status).toBe(200);
      expect(degraded.body.status).toBe('degraded');
      expect(degraded.body.reasons).toEqual([expect.stringMatching(/not reachable and store\.onError is allow: requests are let through without their limits/)]);
      expect(await api(serving)).toEqual({ status: 200 });
      await redis.start();
      expect((await readyzUntil(serving, (r) => r.body.status === 'ready')).status).toBe(200);
    } finally {
      await serving.stop();
      await redis.stop();
    }
  });
});
