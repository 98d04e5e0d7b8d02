import { describe, expect, it } from 'vitest';
import { BREAKER_DEFAULTS, type BreakerSettings, type BreakerStateName, CircuitBreaker, REFUSED } from '../../../src/upstream/breaker.js';

function settings(over: Partial<BreakerSettings> = {}): BreakerSettings {
  return {
    consecutiveFailures: 3,
    errorRate: undefined,
    minRequests: 10,
    windowMs: 10_000,
    cooldownMs: 5_000,
    halfOpenProbes: 1,
    failOn: new Set(BREAKER_DEFAULTS.failOn),
    ...over,
  };
}

function harness(over: Partial<BreakerSettings> = {}) {
  const clock = { t: 1_000_000 };
  const transitions: string[] = [];
  const b = new CircuitBreaker(settings(over), { now: () => clock.t, onTransition: (f: BreakerStateName, t: BreakerStateName) => transitions.push(`${f}->${t}`) });
  const call = (failed: boolean): number => {
    const g = b.tryAcquire();
    if (g !== REFUSED) b.record(g, failed);
    return g;
  };
  return { clock, b, transitions, call };
}

describe('CircuitBreaker', () => {
  it('opens after the configured number of consecutive failures', () => {
    const { b, call, transitions } = harness();
    call(true);
    call(true);
    expect(b.state).toBe('closed');
    call(true);
    expect(b.state).toBe('open');
    expect(transitions).toEqual(['closed->open']);
    expect(b.tryAcquire()).toBe(REFUSED);
  });

  it('resets the consecutive count on a success', () => {
    const { b, call } = harness();
    for (let i = 0; i < 10; i++) {
      call(true);
      call(true);
      call(false);
    }
    expect(b.state).toBe('closed');
  });

  it('opens on the error rate only once minRequests were seen in the window', () => {
    const { b, call } = harness({ consecutiveFailures: 0, errorRate: 0.5, minRequests: 10 });
    for (let i = 0; i < 4; i++) {
      call(true);
      call(false);
    }
    expect(b.state).toBe('closed'); // 8 requests, 50 %, below minRequests
    call(false);
    expect(b.state).toBe('closed'); // 9 requests, 4 failures
    call(true);
    expect(b.state).toBe('open'); // 10 requests, 5 failures
  });

  it('forgets failures that slid out of the window', () => {
    const { b, call, clock } = harness({ consecutiveFailures: 0, errorRate: 0.5, minRequests: 4, windowMs: 1_000 });
    call(true);
    call(true);
    call(true);
    clock.t += 1_500; // all three expired
    call(false);
    call(false);
    call(false);
    call(true);
    expect(b.state).toBe('closed'); // 1 of 4 in the window (7 of 4+3 had they not expired)
    call(true);
    expect(b.state).toBe('closed'); // 2 of 5
    call(true);
    expect(b.state).toBe('open'); // 3 of 6 = 50 %
  });

  it('goes half-open after the cooldown and reports the remaining cooldown meanwhile', () => {
    const { b, call, clock, transitions } = harness();
    call(true);
    call(true);
    call(true);
    expect(b.retryAfterMs()).toBe(5_000);
    clock.t += 3_200;
    expect(b.retryAfterMs()).toBe(1_800);
    expect(b.tryAcquire()).toBe(REFUSED);
    clock.t += 1_800;
    expect(b.state).toBe('half-open');
    expect(transitions).toEqual(['closed->open', 'open->half-open']);
  });

  it('admits exactly halfOpenProbes requests while half-open and closes when they all succeed', () => {
    const { b, clock, transitions } = harness({ halfOpenProbes: 2 });
    for (let i = 0; i < 3; i++) b.record(b.tryAcquire(), true);
    clock.t += 5_000;
    const p1 = b.tryAcquire();
    const p2 = b.tryAcquire();
    expect(p1).not.toBe(REFUSED);
    expect(p2).not.toBe(REFUSED);
    expect(b.tryAcquire()).toBe(REFUSED);
    b.record(p1, false);
    expect(b.state).toBe('half-open');
    b.record(p2, false);
    expect(b.state).toBe('closed');
    expect(transitions).toEqual(['closed->open', 'open->half-open', 'half-open->closed']);
  });

  it('reopens on a failed probe with a fresh cooldown', () => {
    const { b, clock } = harness();
    for (let i = 0; i < 3; i++) b.record(b.tryAcquire(), true);
    clock.t += 5_000;
    const probe = b.tryAcquire();
    clock.t += 700;
    b.record(probe, true);
    expect(b.state).toBe('open');
    expect(b.retryAfterMs()).toBe(5_000);
  });

  it('frees a probe slot when the probe ended without an outcome', () => {
    const { b, clock } = harness();
    for (let i = 0; i < 3; i++) b.record(b.tryAcquire(), true);
    clock.t += 5_000;
    const probe = b.tryAcquire();
    expect(b.tryAcquire()).toBe(REFUSED);
    b.release(probe);
    expect(b.tryAcquire()).not.toBe(REFUSED);
  });

  it('ignores late outcomes of requests admitted before the last transition', () => {
    const { b, clock } = harness();
    const early = b.tryAcquire();
    for (let i = 0; i < 3; i++) b.record(b.tryAcquire(), true);
    clock.t += 5_000;
    const probe = b.tryAcquire();
    b.record(early, true); // admitted while closed: must not reopen the half-open breaker
    expect(b.state).toBe('half-open');
    b.record(probe, false);
    expect(b.state).toBe('closed');
  });

  it('counts only failOn statuses as failures', () => {
    const { b } = harness({ failOn: new Set([500]) });
    expect(b.isFailureStatus(500)).toBe(true);
    expect(b.isFailureStatus(503)).toBe(false);
    expect(harness().b.isFailureStatus(503)).toBe(true);
    expect(harness().b.isFailureStatus(404)).toBe(false);
  });

  it('keeps its state across a reconfiguration and applies the new thresholds', () => {
    const { b, call } = harness();
    call(true);
    call(true);
    b.reconfigure(settings({ consecutiveFailures: 10 }));
    call(true);
    expect(b.state).toBe('closed');
    for (let i = 0; i < 7; i++) call(true);
    expect(b.state).toBe('open');
  });
});
