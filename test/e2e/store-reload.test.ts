// The limits store is built from the first policy's store.url. A reload that would move it is
// refused with its position, so the reported hash stays the policy that runs; a reload that keeps
// the store is applied as usual.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Serving, serveCli } from '../helpers/cli.js';
import { type OkUpstream, okUpstream } from '../helpers/upstream.js';

const TOKEN = 'store-reload-admin-token-0123456789abcdef';
let upstream: OkUpstream;

beforeAll(async () => {
  upstream = await okUpstream();
});

afterAll(async () => {
  await upstream.close();
});

const policyText = (store: string, route = 'open'): string => `version: 1
upstreams: { app: { url: "${upstream.url}" } }
tenants:
  tiers: { free: { rate: 100/s } }
  default: free
routes:
  - { name: ${route}, match: { path: "/**" }, public: true }
${store}`;

async function admin(s: Serving, method: string, p: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${s.admin}${p}`, { method, headers: { authorization: `Bearer ${TOKEN}` } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('a reload that changes store.url', () => {
  it('is refused with its position while the embedded store runs, and the running hash stays the one reported', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pcs-store-reload-'));
    const file = path.join(dir, 'policy.yaml');
    writeFileSync(file, policyText(''));
    const serving = await serveCli(file, { PORTCULLIS_ADMIN_TOKEN: TOKEN });
    try {
      const running = (await admin(serving, 'GET', '/admin/policy')).body.hash;
      writeFileSync(file, policyText('store: { url: "redis://127.0.0.1:9" }\n'));
      const refused = await admin(serving, 'POST', '/admin/reload');
      expect(refused.status).toBe(422);
      expect(refused.body.errors).toEqual([expect.stringMatching(/policy\.yaml:\d+:\d+ store\.url: store\.url cannot be set by a reload: .*restart Portcullis to use Redis/)]);
      expect((await admin(serving, 'GET', '/admin/policy')).body.hash).toBe(running);
      expect((await fetch(`${serving.proxy}/x`)).status).toBe(200);

      // A change that keeps the store is applied.
      writeFileSync(file, policyText('', 'renamed'));
      const applied = await admin(serving, 'POST', '/admin/reload');
      expect(applied.status).toBe(200);
      expect((await admin(serving, 'GET', '/admin/policy')).body.hash).not.toBe(running);
    } finally {
      await serving.stop();
    }
  });
});
