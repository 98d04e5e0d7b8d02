// Client certificates offline, through the built CLI: `portcullis test` files with `clientCert:`
// and `portcullis explain --client-cert` present a verified certificate to the policy's own
// `authentication.mtls` rules, as a TLS handshake would.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { requireBuiltCli, runCli } from '../helpers/cli.js';

let dir: string;

beforeAll(() => {
  requireBuiltCli();
  dir = mkdtempSync(path.join(os.tmpdir(), 'pcs-mtls-sim-'));
  writeFileSync(
    path.join(dir, 'policy.yaml'),
    `version: 1
upstreams:
  app: { url: "http://127.0.0.1:9" }
roles:
  workload: { permissions: ["orders:read"] }
authentication:
  mtls:
    - { name: mesh, match: { uri: "spiffe://example.org/ns/*/sa/*" }, tenant: shop, roles: [workload] }
    - { name: services, match: { dns: "*.svc.example.org" }, subject: cn }
routes:
  - { name: orders, match: { path: /orders }, authenticate: [mtls], require: ["orders:read"], upstream: app }
`,
  );
});

describe('simulated client certificates', () => {
  it('portcullis test decides clientCert requests with the policy mtls rules', async () => {
    const tests = path.join(dir, 'policy.test.yaml');
    writeFileSync(
      tests,
      `tests:
  - name: a workload of the mesh reads orders
    request: { method: GET, path: /orders, clientCert: { uri: "spiffe://example.org/ns/shop/sa/web" } }
    expect: allow
  - name: a service certificate has no orders permission
    request: { method: GET, path: /orders, clientCert: { dns: "billing.svc.example.org", cn: billing } }
    expect: { deny: PERMISSION_DENIED }
  - name: another trust domain is refused
    request: { method: GET, path: /orders, clientCert: { uri: "spiffe://other.org/ns/shop/sa/web" } }
    expect: { deny: AUTH_INVALID }
  - name: no certificate, no credentials
    request: { method: GET, path: /orders }
    expect: { deny: AUTH_MISSING }
`,
    );
    const r = await runCli(['test', tests]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('4 passed');
    expect(r.code).toBe(0);
  });

  it('portcullis explain --client-cert shows the principal the certificate maps to', async () => {
    const r = await runCli(['explain', path.join(dir, 'policy.yaml'), '--path', '/orders', '--client-cert', 'URI:spiffe://example.org/ns/shop/sa/web,CN:web']);
    expect(r.stdout).toContain('principal: spiffe://example.org/ns/shop/sa/web, tenant shop, roles workload, via mtls');
    expect(r.stdout.endsWith('decision: allow\n')).toBe(true);
    const bad = await runCli(['explain', path.join(dir, 'policy.yaml'), '--path', '/orders', '--client-cert', 'IP:10.0.0.1']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--client-cert "IP:10.0.0.1": expected URI:');
  });
});
