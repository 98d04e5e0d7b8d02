// The limits stage under a store that misbehaves in ways the contract does not allow: whatever it
// does, a fault reaches the request that asked (and the server's containment), never the process
// as an unhandled rejection.

import { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createLimitsStage } from '../../../src/limits/limits.stage.js';
import { MemoryStore } from '../../../src/limits/memory-store.js';
import type { LimitResult, LimitStore } from '../../../src/limits/store.js';
import { contextOf } from '../../helpers/context.js';
import { planFrom } from '../../helpers/plan.js';

const POLICY = `version: 1
upstreams: { app: { url: "http://127.0.0.1:9" } }
tenants:
  tiers: { fast: { rate: 100000/s } }
  default: fast
authentication: { apiKeys: {} }
routes:
  - { name: r, match: { path: /r } }
`;

/** An asynchronous store (a memory store behind a promise, as Redis answers) whose check answers `reply`. */
function oddStore(reply: unknown): LimitStore {
  const inner = new MemoryStore();
  return {
    kind: 'redis',
    check: () => Promise.resolve(reply as LimitResult),
    release: (k, s) => inner.release(k, s),
    refreshSlots: (k, h, d, t) => inner.refreshSlots(k, h, d, t),
    usage: (q) => inner.usage(q),
    charge: (c) => inner.charge(c),
    lockedOut: (k) => inner.lockedOut(k),
    recordFailure: (k, f, w, d) => inner.recordFailure(k, f, w, d),
    warmUp: () => inner.warmUp(),
    close: () => inner.close(),
  };
}

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => void unhandled.push(reason);

afterEach(() => {
  process.off('unhandledRejection', onUnhandled);
  unhandled.length = 0;
});

describe('the limits stage', () => {
  it('hands a fault in deciding a leased check to the request, and leaves no unhandled rejection behind', async () => {
    process.on('unhandledRejection', onUnhandled);
    const plan = await planFrom(POLICY);
    const stage = createLimitsStage({ store: oddStore(null) });
    const req = new IncomingMessage(new Socket());
    const ctx = contextOf(req, plan);
    ctx.route = plan.routes[0];
    ctx.principal = Object.freeze({ subject: 's', tenant: 'acme', roles: [], permissions: [], keyId: undefined, via: 'test' as const });
    const outcome = stage.run(ctx);
    expect(outcome).toBeInstanceOf(Promise);
    await expect(outcome).rejects.toBeInstanceOf(TypeError);
    await new Promise((r) => setTimeout(r, 20));
    expect(unhandled).toEqual([]);
  });
});
