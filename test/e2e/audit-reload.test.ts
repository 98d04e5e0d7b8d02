// A reload that changes the `audit:` section is applied, not just announced: after it, events go
// to the new sinks, none is lost or duplicated across the switch (requests keep coming during it),
// and the chain runs on, so the old file, the new one and both together verify. A reload that would
// turn auditing on or off is refused, so the hash /admin/policy and the metrics report always runs.
// Through the built CLI, with the audit worker and with the in-thread pipeline.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type Serving, serveCli } from '../helpers/cli.js';
import { type OkUpstream, okUpstream } from '../helpers/upstream.js';

const TOKEN = 'audit-reload-admin-token-0123456789abcdef';
const CP_KEY = `${'r'.repeat(16)}0123456789abcdef0123456789abcdef`;
const env = { PORTCULLIS_ADMIN_TOKEN: TOKEN, AUDIT_RELOAD_KEY: CP_KEY };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let upstream: OkUpstream;
let upstreamUrl: string;

beforeAll(async () => {
  upstream = await okUpstream();
  upstreamUrl = upstream.url;
});

afterAll(async () => {
  await upstream.close();
});

interface Ev {
  type: string;
  request: { path: string } | null;
  detail?: { reason?: string } | null;
  chain: { seq: number };
}
const events = (file: string): Ev[] =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as Ev)
    : [];

async function until(what: string, check: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting: ${what}`);
    await sleep(50);
  }
}

function policyText(audit: string): string {
  return `version: 1
upstreams: { app: { url: "${upstreamUrl}" } }
routes:
  - { name: open, match: { path: "/**" }, public: true }
${audit}`;
}

const auditSection = (file: string) => `audit:
  chain: true
  checkpoint: { key: "env:AUDIT_RELOAD_KEY", interval: 200ms }
  sinks:
    - file: { path: ${file} }
`;

const admin = async (s: Serving, method: string, p: string): Promise<{ status: number; body: Record<string, unknown> }> => {
  const res = await fetch(`${s.admin}${p}`, { method, headers: { authorization: `Bearer ${TOKEN}` } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

const policyInfoHashes = async (s: Serving): Promise<string[]> =>
  [...(await (await fetch(`${s.admin}/metrics`)).text()).matchAll(/^portcullis_policy_info\{hash="([0-9a-f]+)"\} 1$/gm)].map((m) => m[1]!);

for (const [mode, extra] of [
  ['the audit worker', {}],
  ['the in-thread pipeline', { PORTCULLIS_AUDIT_WORKER: '0' }],
] as const) {
  describe(`a reload that changes the audit section, with ${mode}`, () => {
    it('sends new events to the new file, loses none across the switch, and leaves both files verifiable', async () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'pcs-audit-reload-'));
      const policy = path.join(dir, 'policy.yaml');
      writeFileSync(policy, policyText(auditSection('first.ndjson')));
      const first = path.join(dir, 'first.ndjson');
      const second = path.join(dir, 'second.ndjson');
      const serving = await serveCli(policy, { ...env, ...extra });
      let sent = 0;
      let stop = false;
      const failures: string[] = [];
      // Requests keep coming, one after another, before, during and after the reload.
      const load = (async () => {
        while (!stop) {
          const n = sent++;
          const res = await fetch(`${serving.proxy}/n/${n}`);
          await res.arrayBuffer();
          if (res.status !== 200) failures.push(`${n}: ${res.status}`);
        }
      })();
      try {
        await until('events in the first file', () => events(first).filter((e) => e.request?.path.startsWith('/n/')).length >= 20);
        const before = (await admin(serving, 'GET', '/admin/policy')).body.hash as string;
        writeFileSync(policy, policyText(auditSection('second.ndjson')));
        const reload = await admin(serving, 'POST', '/admin/reload');
        expect(reload.status).toBe(200);
        const after = reload.body.hash as string;
        expect(after).not.toBe(before);
        await until('events in the second file', () => events(second).filter((e) => e.request?.path.startsWith('/n/')).length >= 20);
        const moved = events(first).filter((e) => e.request?.path.startsWith('/n/')).length;
        await sleep(300);
        // Nothing new reaches the first file once the switch is done.
        expect(events(first).filter((e) => e.request?.path.startsWith('/n/')).length).toBe(moved);
        expect((await admin(serving, 'GET', '/admin/policy')).body.hash).toBe(after);
        expect(await policyInfoHashes(serving)).toEqual([after]);
        await until('a checkpoint in the second file', () => events(second).some((e) => e.type === 'audit.checkpoint'));
      } finally {
        stop = true;
        await load;
      }
      const recorded = () => [...events(first), ...events(second)].filter((e) => e.request?.path.startsWith('/n/')).length;
      try {
        await until('an event for every request', () => recorded() >= sent);
      } finally {
        await serving.stop();
      }
      expect(failures).toEqual([]);

      // Every answered request is in exactly one of the files, in order.
      const paths = [...events(first), ...events(second)].filter((e) => e.request?.path.startsWith('/n/')).map((e) => Number(e.request!.path.slice(3)));
      expect(paths).toEqual(Array.from({ length: sent }, (_, i) => i));
      // The old trail ends with a checkpoint signed at the switch; the new one continues its chain.
      const a = events(first);
      const b = events(second);
      expect(a.at(-1)).toMatchObject({ type: 'audit.checkpoint', detail: { reason: 'reload' } });
      expect(b[0]!.chain.seq).toBe(a.at(-1)!.chain.seq + 1);

      for (const files of [[first], [second], [first, second]]) {
        const r = await runCli(['audit', 'verify', ...files, '--key', 'env:AUDIT_RELOAD_KEY'], env);
        expect(r.code, `${files.join(' ')}: ${r.stdout}${r.stderr}`).toBe(0);
        expect(r.stdout).toMatch(/chain intact/);
      }
    });
  });
}

describe('a reload that would turn auditing on or off', () => {
  it('is refused, and the running hash stays the one reported', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pcs-audit-reload-onoff-'));
    const policy = path.join(dir, 'policy.yaml');
    writeFileSync(policy, policyText(''));
    const serving = await serveCli(policy, env);
    try {
      const running = (await admin(serving, 'GET', '/admin/policy')).body.hash as string;
      writeFileSync(policy, policyText(auditSection('audit.ndjson')));
      const added = await admin(serving, 'POST', '/admin/reload');
      expect(added.status).toBe(422);
      expect(added.body.errors).toEqual([expect.stringMatching(/policy\.yaml:\d+:\d+ audit: an audit section cannot be added by a reload: restart Portcullis to start auditing/)]);
      expect((await admin(serving, 'GET', '/admin/policy')).body.hash).toBe(running);
      expect(await policyInfoHashes(serving)).toEqual([running]);
      expect((await fetch(`${serving.proxy}/x`)).status).toBe(200);
      await sleep(200);
      expect(existsSync(path.join(dir, 'audit.ndjson'))).toBe(false);
    } finally {
      await serving.stop();
    }
  });
});
