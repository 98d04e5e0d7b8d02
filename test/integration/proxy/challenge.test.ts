// Every 401 the proxy answers names how to authenticate (RFC 9110 WWW-Authenticate), also one
// that a stage built without a challenge: the answer carries what the policy's authenticators ask
// for, or a Bearer challenge when the running plan has none.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { hashApiKey } from '../../../src/authn/api-key.js';
import { deny } from '../../../src/core/reasons.js';
import type { Stage } from '../../../src/core/stage.js';
import { openPolicy, type PlanManager } from '../../../src/engine/compile.js';
import { Engine } from '../../../src/engine/engine.js';
import { EventBus } from '../../../src/events.js';
import { createLogger } from '../../../src/observability/logger.js';
import { ProxyServer } from '../../../src/proxy/server.js';

const opened: { proxy: ProxyServer; policy: PlanManager }[] = [];

/** A proxy whose only stage refuses every request with a bare 401 (no headers). */
async function bareDenial(policyYaml: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-challenge-'));
  writeFileSync(join(dir, 'policy.yaml'), policyYaml);
  const logger = createLogger({ level: 'silent' });
  const policy = await openPolicy(dir, { watch: false, logger, bus: new EventBus() });
  const refuse: Stage = { name: 'refuse', run: () => deny('AUTH_INVALID') };
  const proxy = new ProxyServer({ policy, engine: new Engine([refuse]), admit: [], logger });
  opened.push({ proxy, policy });
  return proxy.listen('127.0.0.1', 0);
}

afterEach(async () => {
  for (const { proxy, policy } of opened.splice(0)) {
    await proxy.shutdown(0);
    await policy.close();
  }
});

async function challengeOf(base: string): Promise<{ status: number; challenge: unknown }> {
  const res = await request(`${base}/x`);
  await res.body.text();
  return { status: res.statusCode, challenge: res.headers['www-authenticate'] };
}

describe('a 401 built without a challenge', () => {
  it("gets the challenges of the policy's authenticators", async () => {
    const base = await bareDenial(`version: 1
upstreams: { app: { url: "http://127.0.0.1:9" } }
authentication:
  apiKeys: { header: x-client-key, keys: [{ id: a, hash: "${hashApiKey('k')}" }] }
  jwt: [{ name: idp, issuer: https://idp.example, audience: api, algorithms: [HS256], secret: "${'s'.repeat(32)}" }]
routes:
  - { name: r, match: { path: "/**" }, upstream: app }
`);
    expect(await challengeOf(base)).toEqual({ status: 401, challenge: 'ApiKey header="x-client-key", Bearer realm="portcullis"' });
  });

  it('gets a Bearer challenge when the policy configures no authenticator', async () => {
    const base = await bareDenial(`version: 1
upstreams: { app: { url: "http://127.0.0.1:9" } }
routes:
  - { name: r, match: { path: "/**" }, upstream: app, public: true }
`);
    expect(await challengeOf(base)).toEqual({ status: 401, challenge: 'Bearer realm="portcullis"' });
  });
});
