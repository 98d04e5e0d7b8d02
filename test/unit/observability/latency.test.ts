import { describe, expect, it } from 'vitest';
import { LatencyHistogram, TenantLatency } from '../../../src/observability/latency.js';

describe('latency percentiles', () => {
  it('a histogram answers percentiles within its 4% bucket width', () => {
    const h = new LatencyHistogram();
    for (let ms = 1; ms <= 1000; ms++) h.record(ms);
    expect(h.count).toBe(1000);
    for (const [q, exact] of [
      [0.5, 500],
      [0.95, 950],
      [0.99, 990],
    ] as const) {
      expect(h.quantile(q)).toBeGreaterThanOrEqual(exact);
      expect(h.quantile(q)).toBeLessThanOrEqual(exact * 1.04);
    }
    expect(new LatencyHistogram().quantile(0.5)).toBe(0);
  });

  it('keeps tenants apart and reports the last one to two windows only', () => {
    let now = 0;
    const t = new TenantLatency(1000, () => now);
    for (let i = 0; i < 99; i++) t.record('acme', 10);
    t.record('acme', 500);
    t.record('globex', 2);
    expect(t.summary('acme')).toMatchObject({ count: 100 });
    expect(t.summary('acme')!.p50Ms).toBeLessThanOrEqual(10.4);
    expect(t.summary('acme')!.p99Ms).toBeLessThanOrEqual(10.4);
    expect(t.summary('globex')).toMatchObject({ count: 1 });
    expect(t.summary('nobody')).toBeUndefined();
    now = 1500; // one window later: still reported
    t.record('acme', 20);
    expect(t.summary('acme')!.count).toBe(101);
    now = 2600; // the first window is gone
    expect(t.summary('acme')!.count).toBe(1);
    now = 10_000; // idle for long: nothing left
    expect(t.summary('acme')).toBeUndefined();
  });
});
