// The decision core with hand-made stage lists: what it hands back for an allow and a denial,
// that whatever the limits took is given back at once, and that a fault is a contained 500.
import { describe, expect, it } from 'vitest';
import type { RequestContext, RequestRecorder } from '../../../src/core/context.js';
import type { Plan } from '../../../src/core/plan.js';
import { deny } from '../../../src/core/reasons.js';
import { CONTINUE, type Stage } from '../../../src/core/stage.js';
import { type DecisionInput, DecisionService } from '../../../src/decisions/decide.js';
import type { PlanManager } from '../../../src/engine/compile.js';
import { Engine } from '../../../src/engine/engine.js';
import { createLogger } from '../../../src/observability/logger.js';
import { registry } from '../../../src/observability/metrics.js';
import { planFrom } from '../../helpers/plan.js';

const POLICY = `version: 1
trustedProxies: [10.0.0.0/8]
upstreams: { app: { url: "http://127.0.0.1:9" } }
routes:
  - { name: open, match: { path: "/**" }, public: true }
`;

const input = (over: Partial<DecisionInput> = {}): DecisionInput => ({
  door: 'forward-auth',
  method: 'GET',
  target: '/a?b=1',
  host: 'shop.example',
  rawHeaders: ['X-Forwarded-For', '203.0.113.9', 'Host', 'portcullis:8081'],
  peer: '10.1.2.3',
  ...over,
});

async function serviceWith(stages: Stage[], recorded: { ctx: RequestContext; status: number }[] = []) {
  const plan: Plan = await planFrom(POLICY);
  const recorder: RequestRecorder = { record: (ctx, status) => void recorded.push({ ctx, status }) };
  return new DecisionService({ policy: { plan } as unknown as PlanManager, engine: new Engine(stages), recorder, logger: createLogger({ level: 'silent' }) });
}

describe('DecisionService', () => {
  it('decides on the original host and client, and records the decision with its door', async () => {
    const seen: RequestContext[] = [];
    const recorded: { ctx: RequestContext; status: number }[] = [];
    const service = await serviceWith(
      [
        {
          name: 'look',
          run: (ctx) => {
            seen.push(ctx);
            return CONTINUE;
          },
        },
      ],
      recorded,
    );
    const r = await service.decide(input());
    expect(r).toMatchObject({ allowed: true, status: 200, code: undefined, body: '' });
    expect([seen[0]!.host, seen[0]!.path, seen[0]!.query, seen[0]!.clientIp]).toEqual(['shop.example', '/a', '?b=1', '203.0.113.9']);
    expect(recorded.map((x) => [x.ctx.door, x.status])).toEqual([['forward-auth', 200]]);
  });

  it('believes a client address given apart from the headers (the gRPC source address) from a trusted peer', async () => {
    const seen: RequestContext[] = [];
    const service = await serviceWith([
      {
        name: 'look',
        run: (ctx) => {
          seen.push(ctx);
          return CONTINUE;
        },
      },
    ]);
    await service.decide(input({ clientAddress: '198.51.100.4' }));
    expect(seen[0]!.clientIp).toBe('198.51.100.4');
  });

  it('gives back what the limits took as soon as it has decided', async () => {
    let released = 0;
    const take: Stage = {
      name: 'take',
      run: (ctx) => {
        ctx.limits = { headers: { 'RateLimit-Policy': '"r";q=5;w=1' }, release: () => void released++, degraded: false };
        return CONTINUE;
      },
    };
    const service = await serviceWith([take]);
    const r = await service.decide(input());
    expect(released).toBe(1);
    expect(r.responseHeaders).toEqual([['ratelimit-policy', '"r";q=5;w=1']]);
  });

  it('hands a denial back with its status, headers and problem body, asynchronous stages included', async () => {
    const slow: Stage = { name: 'slow', run: () => Promise.resolve(deny('RATE_LIMITED', undefined, { 'Retry-After': '7' })) };
    const r = await (await serviceWith([slow])).decide(input());
    expect(r).toMatchObject({ allowed: false, status: 429, code: 'RATE_LIMITED', upstreamHeaders: [] });
    expect(r.responseHeaders).toContainEqual(['retry-after', '7']);
    expect(JSON.parse(r.body)).toMatchObject({ code: 'RATE_LIMITED', requestId: r.requestId });
  });

  it('refuses an untrusted peer before any stage runs', async () => {
    let ran = false;
    const r = await (
      await serviceWith([
        {
          name: 'never',
          run: () => {
            ran = true;
            return CONTINUE;
          },
        },
      ])
    ).decide(input({ peer: '192.0.2.1' }));
    expect([r.status, r.code, ran]).toEqual([403, 'IP_DENIED', false]);
  });

  it('contains a stage that throws, or rejects, as a counted 500 GATEWAY_ERROR', async () => {
    const before = (await registry.getSingleMetric('portcullis_gateway_faults_total')!.get()).values.find((v) => v.labels.where === 'decision')?.value ?? 0;
    const recorded: { ctx: RequestContext; status: number }[] = [];
    const thrower = await serviceWith(
      [
        {
          name: 'boom',
          run: () => {
            throw new Error('bug');
          },
        },
      ],
      recorded,
    );
    expect(await thrower.decide(input())).toMatchObject({ allowed: false, status: 500, code: 'GATEWAY_ERROR' });
    const rejecter = await serviceWith([{ name: 'boom', run: () => Promise.reject(new Error('bug')) }], recorded);
    expect(await rejecter.decide(input())).toMatchObject({ allowed: false, status: 500, code: 'GATEWAY_ERROR' });
    const after = (await registry.getSingleMetric('portcullis_gateway_faults_total')!.get()).values.find((v) => v.labels.where === 'decision')?.value ?? 0;
    expect(after - before).toBe(2);
    expect(recorded.map((x) => [x.ctx.code, x.status])).toEqual([
      ['GATEWAY_ERROR', 500],
      ['GATEWAY_ERROR', 500],
    ]);
  });
});
