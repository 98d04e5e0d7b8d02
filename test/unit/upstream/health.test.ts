// Health checkers against real sockets: never two probes of one target at once, stopped on reload
// and on close, and a reload with unchanged settings keeps the running checker and its state.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Balancers } from '../../../src/upstream/balancer.js';
import { planFrom } from '../../helpers/plan.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const servers: Server[] = [];
const balancers: Balancers[] = [];

afterEach(async () => {
  for (const b of balancers.splice(0)) b.close();
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

/** A target that counts probes and, when `hang`, never answers them. */
async function target(hang: boolean): Promise<{ url: string; probes: () => number; maxInFlight: () => number }> {
  let probes = 0;
  let inFlight = 0;
  let max = 0;
  const server = createServer((req, res) => {
    probes++;
    inFlight++;
    max = Math.max(max, inFlight);
    req.socket.once('close', () => inFlight--);
    if (!hang) res.end('ok');
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, probes: () => probes, maxInFlight: () => max };
}

const policy = (url: string, check: string) => `version: 1
upstreams:
  app:
    url: "${url}"
${check}
routes:
  - { name: r, match: { path: "/**" }, public: true }
`;

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting: ${what}`);
    await sleep(20);
  }
}

describe('health checkers', () => {
  it('never has two probes of one target in flight, even when probes time out', async () => {
    const t = await target(true);
    const b = new Balancers();
    balancers.push(b);
    b.sync(await planFrom(policy(t.url, '    healthCheck: { path: /h, interval: 100ms, timeout: 100ms, unhealthyAfter: 2 }')));
    await until('five probes', () => t.probes() >= 5);
    expect(t.maxInFlight()).toBe(1);
    expect(b.healthSnapshot()).toEqual([expect.objectContaining({ healthy: false, lastResult: 'timeout after 100ms' })]);
  });

  it('stops probing when a reload removes the health check, and puts the target back in rotation', async () => {
    const t = await target(true);
    const b = new Balancers();
    balancers.push(b);
    b.sync(await planFrom(policy(t.url, '    healthCheck: { path: /h, interval: 100ms, timeout: 50ms, unhealthyAfter: 1 }')));
    await until('out of rotation', () => b.healthSnapshot()[0]?.healthy === false);
    const plain = await planFrom(policy(t.url, ''));
    b.sync(plain);
    expect(b.healthSnapshot()).toEqual([]);
    const seen = t.probes();
    await sleep(400);
    expect(t.probes()).toBe(seen);
    expect('retryAfterMs' in b.pick(plain.upstreams.get('app')!)).toBe(false);
  });

  it('keeps the running checker and its state across a reload with the same settings', async () => {
    const t = await target(false);
    const b = new Balancers();
    balancers.push(b);
    const check = '    healthCheck: { path: /h, interval: 100ms, timeout: 100ms }';
    b.sync(await planFrom(policy(t.url, check)));
    await until('two probes', () => (b.healthSnapshot()[0]?.successes ?? 0) >= 2);
    const before = b.healthSnapshot()[0]!.successes;
    b.sync(await planFrom(policy(t.url, check)));
    expect(b.healthSnapshot()[0]!.successes).toBeGreaterThanOrEqual(before);
  });

  it('stops every checker on close', async () => {
    const t = await target(false);
    const b = new Balancers();
    b.sync(await planFrom(policy(t.url, '    healthCheck: { path: /h, interval: 100ms, timeout: 100ms }')));
    await until('a probe', () => t.probes() >= 1);
    b.close();
    const seen = t.probes();
    await sleep(400);
    expect(t.probes()).toBe(seen);
  });

  it('refuses a timeout longer than the interval', async () => {
    await expect(planFrom(policy('http://127.0.0.1:1', '    healthCheck: { path: /h, interval: 1s, timeout: 2s }'))).rejects.toThrow(
      /healthCheck\.timeout: the timeout \(2s\) must not be longer than the interval \(1s\)/,
    );
  });
});
