// `portcullis keys list|revoke --admin` against `portcullis serve`, as an operator runs them: the
// policy's static keys are listed with the dynamic ones (never a hash), and revoking a static key
// refuses it at once, for as long as the store keeps the revocation (a restart included), while
// the policy still lists it.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../../src/authn/api-key.js';
import { requireBuiltCli, runCli, type Serving, serveCli } from '../helpers/cli.js';
import { redisUrl } from '../helpers/redis.js';

const TOKEN = 'keys-static-revoke-e2e-token';
const run = `${process.pid}-${Date.now().toString(36)}`;
const ID = `ops-${run}`;
const KEEP = `keep-${run}`;
const secret = (id: string): string => `pcs_secret_of_${id}`;

let dir: string;
let policy: string;
let upstream: Server;
const serving: Serving[] = [];

beforeAll(async () => {
  requireBuiltCli();
  upstream = createServer((req, res) => {
    req.resume();
    res.end('ok');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const port = (upstream.address() as AddressInfo).port;
  dir = mkdtempSync(join(tmpdir(), 'portcullis-keys-static-'));
  policy = join(dir, 'policy.yaml');
  writeFileSync(
    policy,
    `version: 1
upstreams: { app: { url: "http://127.0.0.1:${port}" } }
authentication:
  apiKeys:
    keys:
      - { id: ${ID}, hash: "${hashApiKey(secret(ID))}", tenant: acme, roles: [user] }
      - { id: ${KEEP}, hash: "${hashApiKey(secret(KEEP))}", tenant: acme, roles: [user] }
roles: { user: { permissions: ["api:use"] } }
store: { url: "${redisUrl()}" }
routes:
  - { name: api, match: { path: "/api/**" }, require: ["api:use"] }
`,
  );
});
afterAll(async () => {
  for (const s of serving) await s.stop();
  upstream?.closeAllConnections();
  await new Promise<void>((r) => (upstream ? upstream.close(() => r()) : r()));
  rmSync(dir, { recursive: true, force: true });
});

async function call(s: Serving, key: string): Promise<{ status: number; code: string | undefined }> {
  const res = await fetch(`${s.proxy}/api/x`, { headers: { 'x-api-key': key } });
  const text = await res.text();
  return { status: res.status, code: res.status === 200 ? undefined : (JSON.parse(text) as { code: string }).code };
}

async function start(): Promise<Serving> {
  const s = await serveCli(policy, { PORTCULLIS_ADMIN_TOKEN: TOKEN });
  serving.push(s);
  return s;
}

describe('portcullis keys revoke on a static key', () => {
  it('refuses the key at once with 401 AUTH_INVALID, lists it as revoked (source policy), and keeps it refused after a restart', async () => {
    const env = { PORTCULLIS_ADMIN_TOKEN: TOKEN };
    const s = await start();
    expect(await call(s, secret(ID))).toEqual({ status: 200, code: undefined });

    const before = await runCli(['keys', 'list', '--admin', s.admin, '--tenant', 'acme'], env);
    expect(before.stderr).toBe('');
    expect(before.code).toBe(0);
    const lines = before.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('ID\tTENANT\tROLES\tSOURCE\tSTATUS\tCREATED\tEXPIRES\tLAST_USED\tLIMITS');
    // Last used: written within a second of the call above, so either not yet or its time.
    expect(lines.some((l) => new RegExp(`^${ID}\tacme\tuser\tpolicy\tactive\t-\t-\t[^\t]+\t-$`).test(l))).toBe(true);
    expect(before.stdout).not.toContain(hashApiKey(secret(ID)).slice('sha256:'.length));

    const revoked = await runCli(['keys', 'revoke', ID, '--admin', s.admin], env);
    expect(revoked.stderr).toBe('');
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toContain(`revoked static key ${ID}`);
    expect(revoked.stdout).toContain(`the policy still lists ${ID}`);
    // Immediately: the replica that answered the revocation refuses the key before it says so.
    expect(await call(s, secret(ID))).toEqual({ status: 401, code: 'AUTH_INVALID' });
    expect(await call(s, secret(KEEP))).toEqual({ status: 200, code: undefined });

    const after = await runCli(['keys', 'list', '--admin', s.admin, '--tenant', 'acme'], env);
    expect(after.code).toBe(0);
    // The first seven columns; last use and limits follow.
    const firstSeven = after.stdout.split('\n').map((l) => l.split('\t').slice(0, 7).join('\t'));
    expect(firstSeven).toContain(`${ID}\tacme\tuser\tpolicy\trevoked\t-\t-`);
    expect(firstSeven).toContain(`${KEEP}\tacme\tuser\tpolicy\tactive\t-\t-`);
    const json = await runCli(['keys', 'list', '--admin', s.admin, '--json'], env);
    const listed = (JSON.parse(json.stdout) as { id: string; source: string; status: string; revoked: string | null }[]).find((k) => k.id === ID);
    expect(listed).toMatchObject({ source: 'policy', status: 'revoked' });
    expect(typeof listed?.revoked).toBe('string');
    expect(json.stdout).not.toMatch(/sha256|"hash"|"digest"/);

    // The revocation lives in the store, not in the process: a restarted serve refuses the key too.
    await s.stop();
    const restarted = await start();
    expect(await call(restarted, secret(ID))).toEqual({ status: 401, code: 'AUTH_INVALID' });
    expect(await call(restarted, secret(KEEP))).toEqual({ status: 200, code: undefined });
  });

  it('says a key id neither the policy nor the store has is unknown (exit 1)', async () => {
    const s = serving.at(-1) ?? (await start());
    const r = await runCli(['keys', 'revoke', `nothing-${run}`, '--admin', s.admin], { PORTCULLIS_ADMIN_TOKEN: TOKEN });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`no key with id "nothing-${run}"`);
  });
});
