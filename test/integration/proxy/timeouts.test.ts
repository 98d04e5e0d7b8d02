// Upstream timeouts on real sockets: they fire when configured, not on a coarse timer's next tick.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, startApp } from '../../../src/app.js';
import { createLogger } from '../../../src/observability/logger.js';

let upstream: Server;
let app: App;

beforeAll(async () => {
  // Answers only after 5 s: every request through the proxy meets its response timeout.
  upstream = createServer((_req, res) => void setTimeout(() => res.end('late'), 5000).unref());
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-timeouts-'));
  writeFileSync(
    join(dir, 'policy.yaml'),
    `version: 1
upstreams:
  app:
    url: http://127.0.0.1:${(upstream.address() as AddressInfo).port}
    timeouts: { connect: 1s, response: 2s }
routes:
  - { name: open, match: { path: "/**" }, public: true }
`,
  );
  app = await startApp({ policyPath: dir, listen: { host: '127.0.0.1', port: 0 }, admin: null, drainMs: 500, demo: false, watch: false, logger: createLogger({ level: 'silent' }) });
});

afterAll(async () => {
  await app?.shutdown();
  upstream.closeAllConnections();
  await new Promise<void>((r) => upstream.close(() => r()));
});

describe('the upstream response timeout', () => {
  it('answers 504 when the configured time is up, whenever within a second the request started', async () => {
    // Four requests started 125 ms apart cover every phase of a 499 ms timer tick: on such a tick,
    // at least one of them would wait 370 ms or more past its 2 s.
    const timed = async (delayMs: number): Promise<{ status: number; code: string; elapsed: number }> => {
      await new Promise((r) => setTimeout(r, delayMs));
      const t0 = performance.now();
      const res = await request(`${app.proxyUrl}/slow`);
      const body = (await res.body.json()) as { code: string };
      return { status: res.statusCode, code: body.code, elapsed: performance.now() - t0 };
    };
    const results = await Promise.all([0, 125, 250, 375].map(timed));
    for (const r of results) {
      expect(r.status).toBe(504);
      expect(r.code).toBe('UPSTREAM_TIMEOUT');
      expect(r.elapsed).toBeGreaterThanOrEqual(1990);
      expect(r.elapsed, `fired ${Math.round(r.elapsed - 2000)} ms late`).toBeLessThan(2250);
    }
  });
});
