import { describe, expect, it } from 'vitest';
import { PolicyError } from '../../../src/policy/diagnostics.js';
import { planFrom } from '../../helpers/plan.js';

const base = `version: 1
upstreams: { app: { url: "http://127.0.0.1:1" } }
routes:
  - { name: r, match: { path: /x }, public: true, audit: denied }
`;

describe('audit section compiler', () => {
  it('compiles every sink kind into a frozen plan and accepts route audit modes', async () => {
    const plan = await planFrom(`${base}audit:
  chain: true
  redact: [Tracking_ID]
  sinks:
    - stdout: {}
    - file: { path: /tmp/pcs-audit/a.ndjson, rotate: 1mb, retain: 7d, fsync: always }
    - redisStream: { key: "portcullis:audit", url: "redis://127.0.0.1:6379" }
    - webhook: { url: "https://siem.example.com/ingest", secret: s3cret }
`);
    expect(plan.auditModes[0]).toBe('denied');
    const a = plan.audit!;
    expect(Object.isFrozen(a)).toBe(true);
    expect(a.chain).toBe(true);
    expect(a.sinks.map((s) => s.kind)).toEqual(['stdout', 'file', 'redisStream', 'webhook']);
    expect(a.sinks[1]).toMatchObject({ rotateBytes: 1024 * 1024, retainMs: 7 * 86_400_000, fsync: 'always' });
    expect(a.sinks[2]).toMatchObject({ maxLen: 1_000_000 });
    expect(a.redact).toContain('tracking_id');
  });

  it('refuses a redisStream sink with no Redis to write to', async () => {
    await expect(planFrom(`${base}audit: { sinks: [ { redisStream: { key: k } } ] }\n`)).rejects.toBeInstanceOf(PolicyError);
  });

  it('leaves audit off when the section is absent', async () => {
    expect((await planFrom(base)).audit).toBeUndefined();
  });
});
