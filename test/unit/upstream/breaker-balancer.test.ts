import { describe, expect, it } from 'vitest';
import { EventBus, type SystemEvent } from '../../../src/events.js';
import { registry } from '../../../src/observability/metrics.js';
import { type Admission, Balancers, isAllOpen } from '../../../src/upstream/balancer.js';
import { BREAKER_DEFAULTS, type BreakerSettings } from '../../../src/upstream/breaker.js';
import type { UpstreamPlan } from '../../../src/upstream/compile.js';
import { planFrom } from '../../helpers/plan.js';

const breaker: BreakerSettings = {
  consecutiveFailures: 2,
  errorRate: undefined,
  minRequests: 10,
  windowMs: 10_000,
  cooldownMs: 4_000,
  halfOpenProbes: 1,
  failOn: new Set(BREAKER_DEFAULTS.failOn),
};

function upstream(name: string, origins: string[], b: BreakerSettings | undefined = breaker): UpstreamPlan {
  return { name, targets: origins.map((origin) => ({ origin, basePath: '' })), connectTimeoutMs: 1000, responseTimeoutMs: 1000, connections: 1, retries: 0, protocol: 'http1', breaker: b };
}

/** A policy whose one upstream has the breaker `upstream()` gives, with this cooldown: a real Plan for sync. */
const policy = (name: string, origins: string[], cooldown = '4s'): string => `version: 1
upstreams:
  ${name}:
    targets: [${origins.join(', ')}]
    breaker: { consecutiveFailures: 2, minRequests: 10, window: 10s, halfOpenProbes: 1, cooldown: ${cooldown} }
routes:
  - { name: all, match: { path: "/**" }, public: true, upstream: ${name} }
`;

function admitted(p: ReturnType<Balancers['pick']>): Admission {
  if (isAllOpen(p)) throw new Error('expected an admission');
  return p;
}

describe('Balancers', () => {
  it('round-robins over the targets', () => {
    const up = upstream('rr', ['http://a:1', 'http://b:1', 'http://c:1']);
    const bal = new Balancers();
    const seen = Array.from({ length: 6 }, () => admitted(bal.pick(up)).handle.origin);
    expect(seen).toEqual(['http://a:1', 'http://b:1', 'http://c:1', 'http://a:1', 'http://b:1', 'http://c:1']);
  });

  it('skips a target whose breaker is open', () => {
    const up = upstream('skip', ['http://a:1', 'http://b:1']);
    const bal = new Balancers();
    // Fail target a twice.
    for (let i = 0; i < 4; i++) {
      const a = admitted(bal.pick(up));
      if (a.handle.origin === 'http://a:1') a.settle(503);
      else a.settle(200);
    }
    const next = Array.from({ length: 4 }, () => admitted(bal.pick(up)).handle.origin);
    expect(next).toEqual(['http://b:1', 'http://b:1', 'http://b:1', 'http://b:1']);
  });

  it('answers with the shortest remaining cooldown when every target is open', () => {
    const clock = { t: 0 };
    const up = upstream('all', ['http://a:1', 'http://b:1']);
    const bal = new Balancers({ now: () => clock.t });
    for (let i = 0; i < 2; i++) admitted(bal.pick(up)).fail(); // a, b
    clock.t = 1_000;
    admitted(bal.pick(up)).fail(); // a opens at 1000
    clock.t = 1_500;
    admitted(bal.pick(up)).fail(); // b opens at 1500
    clock.t = 2_500;
    const p = bal.pick(up);
    expect(isAllOpen(p) && p.retryAfterMs).toBe(2_500); // a's, the shorter one
  });

  it('lets an admission count only once', () => {
    const up = upstream('once', ['http://a:1']);
    const bal = new Balancers();
    const a = admitted(bal.pick(up));
    a.fail();
    a.fail();
    a.settle(503);
    expect(isAllOpen(bal.pick(up))).toBe(false); // one failure of two
  });

  it('keeps breakers across a Plan swap and publishes every transition with metrics', async () => {
    const bus = new EventBus();
    const events: SystemEvent[] = [];
    bus.subscribe((e) => events.push(e));
    const clock = { t: 0 };
    const bal = new Balancers({ now: () => clock.t, bus });
    const v1 = upstream('swap', ['http://s:1']);
    admitted(bal.pick(v1)).settle(502);
    admitted(bal.pick(v1)).settle(504);
    const swapped = await planFrom(policy('swap', ['http://s:1'], '1s'));
    const v2 = swapped.upstreams.get('swap')!;
    bal.sync(swapped);
    expect(isAllOpen(bal.pick(v2))).toBe(true); // still open after the swap
    clock.t = 1_000; // the new, shorter cooldown applies
    admitted(bal.pick(v2)).settle(200);
    expect(events).toEqual([
      { type: 'breaker.transition', upstream: 'swap', target: 'http://s:1', from: 'closed', to: 'open' },
      { type: 'breaker.transition', upstream: 'swap', target: 'http://s:1', from: 'open', to: 'half-open' },
      { type: 'breaker.transition', upstream: 'swap', target: 'http://s:1', from: 'half-open', to: 'closed' },
    ]);
    const text = await registry.metrics();
    expect(text).toContain('portcullis_breaker_state{upstream="swap",target="http://s:1"} 0');
    expect(text).toContain('portcullis_breaker_transitions_total{upstream="swap",target="http://s:1",to="half-open"} 1');
    expect(bal.snapshot()).toEqual([{ upstream: 'swap', target: 'http://s:1', state: 'closed', retryAfterMs: 0 }]);
  });

  it('forgets the breakers of removed targets', async () => {
    const bal = new Balancers();
    bal.pick(upstream('gone', ['http://g:1', 'http://h:1']));
    bal.sync(await planFrom(policy('gone', ['http://h:1'])));
    expect(bal.snapshot().map((s) => s.target)).toEqual(['http://h:1']);
  });

  it('admits everything when the upstream has no breaker', () => {
    const up = { ...upstream('plain', ['http://p:1']), breaker: undefined };
    const bal = new Balancers();
    for (let i = 0; i < 10; i++) admitted(bal.pick(up)).fail();
    expect(isAllOpen(bal.pick(up))).toBe(false);
  });
});
