// The Kubernetes gateway example's policy, served as shipped (its routes.yaml untouched; only the
// upstream Services are pointed at a local upstream): a client without a key is told how to
// authenticate, a key created through the admin API (kept in the shared Redis) is accepted by
// every replica, and tenants and permissions are enforced.

import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { type App, startApp } from '../../../src/app.js';
import { createLogger } from '../../../src/observability/logger.js';
import { redisUrl } from '../../helpers/redis.js';

const TOKEN = 'gateway-example-admin-token-0123456789abcdef';
const MANIFEST = new URL('../../../deploy/kubernetes/gateway/portcullis-gateway.yaml', import.meta.url).pathname;
const run = Date.now().toString(36);

let upstream: Server;
const replicas: App[] = [];

function policyFiles(upstreamUrl: string): Record<string, string> {
  const configMap = parseAllDocuments(readFileSync(MANIFEST, 'utf8'))
    .map((d) => d.toJS() as { kind?: string; data?: Record<string, string> })
    .find((d) => d?.kind === 'ConfigMap')!;
  const files = { ...configMap.data! };
  files['upstreams.yaml'] = files['upstreams.yaml']!.replace(/http:\/\/[a-z]+\.default\.svc\.cluster\.local:8080/g, upstreamUrl);
  return files;
}

async function replica(files: Record<string, string>): Promise<App> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-gateway-example-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const app = await startApp({
    policyPath: dir,
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    adminToken: TOKEN,
    drainMs: 0,
    demo: false,
    watch: false,
    env: { REDIS_URL: redisUrl() },
    logger: createLogger({ level: 'silent' }),
  });
  replicas.push(app);
  return app;
}

async function get(app: App, path: string, key?: string): Promise<{ status: number; challenge: string | undefined; code: string | undefined }> {
  const res = await request(`${app.proxyUrl}${path}`, { headers: key === undefined ? {} : { 'x-api-key': key } });
  const text = await res.body.text();
  const challenge = res.headers['www-authenticate'];
  return { status: res.statusCode, challenge: typeof challenge === 'string' ? challenge : undefined, code: res.statusCode >= 400 ? (JSON.parse(text) as { code: string }).code : undefined };
}

beforeAll(async () => {
  upstream = createServer((req, res) => {
    req.resume();
    res.end('ok');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const files = policyFiles(`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`);
  await replica(files);
  await replica(files);
});

afterAll(async () => {
  for (const app of replicas) await app.shutdown();
  upstream.closeAllConnections();
  await new Promise<void>((r) => upstream.close(() => r()));
});

describe('the Kubernetes gateway example, served as shipped', () => {
  it('answers a request without a key 401 with an ApiKey challenge', async () => {
    const r = await get(replicas[0]!, '/v1/tenants/acme/reports/q1');
    expect(r).toEqual({ status: 401, challenge: 'ApiKey header="x-api-key"', code: 'AUTH_MISSING' });
  });

  it("accepts a key created through one replica's admin API on every replica, for its own tenant and role only", async () => {
    const [a, b] = replicas as [App, App];
    const created = await request(`${a.adminUrl}/admin/keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ id: `example-${run}`, tenant: 'acme', roles: ['reports-reader'] }),
    });
    const body = (await created.body.json()) as { key: string };
    expect(created.statusCode).toBe(201);
    expect(await get(a, '/v1/tenants/acme/reports/q1', body.key)).toMatchObject({ status: 200 });
    expect(await get(b, '/v1/tenants/acme/reports/q1', body.key)).toMatchObject({ status: 200 });
    expect(await get(b, '/v1/tenants/globex/reports/q1', body.key)).toMatchObject({ status: 403, code: 'TENANT_MISMATCH' });
    expect(await get(a, '/v1/tenants/acme/billing/invoices', body.key)).toMatchObject({ status: 403, code: 'PERMISSION_DENIED' });
    expect(await get(a, '/v1/tenants/acme/reports/q1', 'pcs_not-a-key')).toMatchObject({ status: 401, challenge: 'ApiKey header="x-api-key"', code: 'AUTH_INVALID' });
  });
});
