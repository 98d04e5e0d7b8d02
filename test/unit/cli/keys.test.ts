import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { hashApiKey } from '../../../src/authn/api-key.js';
import type { CliIo } from '../../../src/cli/command.js';
import { run } from '../../../src/cli/keys.js';
import { found } from '../../helpers/authn.js';
import { planFrom } from '../../helpers/plan.js';

function io(): CliIo & { out: string; err: string } {
  const o = { out: '', err: '', env: {} } as CliIo & { out: string; err: string };
  return Object.assign(o, { stdout: (t: string) => void (o.out += t), stderr: (t: string) => void (o.err += t) });
}

describe('portcullis keys', () => {
  it('creates a high-entropy pcs_ key and a policy entry holding only its hash', async () => {
    const a = io();
    expect(await run(['create', '--tenant', 'acme', '--roles', 'analyst,viewer', '--id', 'ci-bot', '--expires', '2099-01-01'], a)).toBe(0);
    const key = /API key \(shown once, store it now\): (pcs_[A-Za-z0-9_-]{43})\n/.exec(a.out)![1]!;
    const entry = (parse(a.out.slice(a.out.indexOf('\n-') + 1)) as Record<string, unknown>[])[0]!;
    expect(entry).toEqual({ id: 'ci-bot', hash: hashApiKey(key), tenant: 'acme', roles: ['analyst', 'viewer'], expires: '2099-01-01T00:00:00.000Z' });
    expect(a.out.split(key).length).toBe(2); // printed exactly once
    const other = io();
    await run(['create', '--tenant', 'acme', '--roles', 'analyst'], other);
    expect(other.out).not.toContain(key);

    // The printed entry is a valid policy key that authenticates the printed key.
    const plan = await planFrom(`version: 1
upstreams: { app: { url: "http://127.0.0.1:9" } }
authentication:
  apiKeys:
    keys:
      - { id: ${entry.id as string}, hash: "${entry.hash as string}", tenant: acme, roles: [analyst, viewer], expires: "${entry.expires as string}" }
routes:
  - { name: r, match: { path: /r } }
`);
    const out = found(await plan.authn!.apiKey!.authenticate(['x-api-key', key]));
    expect(out?.principal?.tenant).toBe('acme');
  });

  it('hashes a key', async () => {
    const a = io();
    expect(await run(['hash', 'test'], a)).toBe(0);
    expect(a.out).toBe('sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n');
  });

  it('refuses bad invocations; the --admin variants need PORTCULLIS_ADMIN_TOKEN', async () => {
    await expect(run(['create', '--roles', 'a'], io())).rejects.toThrow(/--tenant/);
    await expect(run(['create', '--tenant', 't'], io())).rejects.toThrow(/--roles/);
    await expect(run(['create', '--tenant', 't', '--roles', 'a', '--expires', '2001-01-01'], io())).rejects.toThrow(/in the past/);
    const a = io();
    await expect(run(['list'], a)).rejects.toThrow(/--admin/);
    await expect(run(['revoke', '--admin', 'http://x'], a)).rejects.toThrow(/revoke ID/);
  });
});
