import { createServer } from 'node:http';
import { afterAll, describe, expect, it } from 'vitest';
import { TrustedProxies } from '../../../src/authn/client-ip.js';
import { IpRule } from '../../../src/authn/ip-rules.js';
import { createIpRulesStage } from '../../../src/authn/ip-rules.stage.js';
import type { Stage } from '../../../src/core/stage.js';
import { type Listening, listen, stageServer } from '../../helpers/authn.js';
import { contextOf } from '../../helpers/context.js';
import { planFrom } from '../../helpers/plan.js';

const opened: Listening[] = [];
afterAll(async () => {
  await Promise.all(opened.map((l) => l.close()));
});

describe('IP rules', () => {
  it.each([
    [['10.0.0.0/8'], [], '10.1.2.3', false],
    [['10.0.0.0/8'], [], '11.1.2.3', true],
    [['10.0.0.0/8'], ['10.9.0.0/16'], '10.9.1.1', true],
    [[], ['192.0.2.0/24'], '192.0.2.7', true],
    [[], ['192.0.2.0/24'], '198.51.100.1', false],
    [['10.0.0.0/8'], [], '::ffff:10.1.2.3', false],
    [[], ['::ffff:192.0.2.0/120'], '192.0.2.9', true],
    [['2001:db8::/32'], [], '2001:db8:1::5', false],
    [['2001:db8::/32'], [], '2001:db9::5', true],
    [[], ['::1/128'], '::1', true],
    [['10.0.0.0/8'], [], '', true],
    [[], ['10.0.0.0/8'], '', false],
    [['10.0.0.0/8'], [], 'not-an-ip', true],
  ] as [string[], string[], string, boolean][])('allow %j deny %j: %s denied = %s', (allow, deny, ip, denied) => {
    expect(new IpRule(allow, deny).denies(ip)).toBe(denied);
  });

  it('denies with 403 IP_DENIED through the stage, top level before route', async () => {
    const plan = await planFrom(`
version: 1
upstreams: { app: { url: "http://127.0.0.1:9" } }
ipDeny: ["192.0.2.0/24"]
routes:
  - { name: open, match: { path: /open }, public: true }
  - { name: admin, match: { path: /admin }, public: true, ipAllow: ["10.0.0.0/8", "::1/128"] }
  - { name: local, match: { path: /local }, public: true, ipAllow: ["127.0.0.1"] }
`);
    const app = await stageServer(() => plan, [createIpRulesStage()]);
    opened.push(app);
    expect((await fetch(`${app.url}/open`)).status).toBe(200);
    expect((await fetch(`${app.url}/local`)).status).toBe(200);
    const denied = await fetch(`${app.url}/admin`);
    expect(denied.status).toBe(403);
    expect(((await denied.json()) as { code: string }).code).toBe('IP_DENIED');
    // A client the trust rules place in the denied block, through a real request.
    const viaProxy = await stageServer(
      () => plan,
      [createIpRulesStage()],
      () => '192.0.2.10',
    );
    opened.push(viaProxy);
    expect((await fetch(`${viaProxy.url}/open`)).status).toBe(403);
  });

  it('applies IPv6 rules to a real IPv6 peer', async () => {
    const plan = await planFrom(`
version: 1
upstreams: { app: { url: "http://127.0.0.1:9" } }
routes:
  - { name: v6only, match: { path: /v6 }, public: true, ipAllow: ["::1/128"] }
  - { name: nov6, match: { path: /nov6 }, public: true, ipDeny: ["::1/128"] }
`);
    const app = await stageServer(() => plan, [createIpRulesStage()]);
    opened.push(app);
    const v6 = await stageServerOn6(plan);
    opened.push(v6);
    expect((await fetch(`${v6.url}/v6`)).status).toBe(200);
    expect((await fetch(`${v6.url}/nov6`)).status).toBe(403);
    expect((await fetch(`${app.url}/v6`)).status).toBe(403);
  });
});

async function stageServerOn6(plan: Awaited<ReturnType<typeof planFrom>>): Promise<Listening> {
  const { runStages } = await import('../../../src/core/stage.js');
  const stage = createIpRulesStage();
  const server = createServer((req, res) => {
    const ctx = contextOf(req, plan);
    ctx.clientIp = req.socket.remoteAddress ?? '';
    const match = plan.router.find('GET', '', (req.url ?? '/').split('?')[0]!);
    ctx.route = match?.route;
    const out = runStages([stage], ctx) as ReturnType<Stage['run']>;
    res.writeHead(out === null ? 200 : 403);
    res.end();
  });
  return listen(server, '::1');
}

describe('client IP behind trusted proxies', () => {
  const trusted = new TrustedProxies(['10.0.0.0/8', 'fd00::/8']);
  it.each([
    ['an untrusted peer is the client, whatever it forwards', '203.0.113.9', '1.1.1.1', '203.0.113.9'],
    ['a trusted peer without X-Forwarded-For is the client', '10.0.0.1', undefined, '10.0.0.1'],
    ['one trusted hop', '10.0.0.1', '198.51.100.7', '198.51.100.7'],
    ['a chain of trusted hops is walked right to left', '10.0.0.1', '198.51.100.7, 10.1.1.1, 10.2.2.2', '198.51.100.7'],
    ['a spoofed left part is ignored', '10.0.0.1', '6.6.6.6, 198.51.100.7, 10.1.1.1', '198.51.100.7'],
    ['repeated headers count as one list', '10.0.0.1', ['6.6.6.6', '198.51.100.7'], '198.51.100.7'],
    ['IPv6 hops', 'fd00::1', '2001:db8::7, fd00::2', '2001:db8::7'],
    ['an IPv4-mapped peer', '::ffff:10.0.0.1', '198.51.100.7', '198.51.100.7'],
    ['entries with ports', '10.0.0.1', '[2001:db8::7]:4711, 10.3.3.3:80', '2001:db8::7'],
    ['garbage stops the walk at the hop that reported it', '10.0.0.1', '198.51.100.7, garbage', '10.0.0.1'],
    ['all hops trusted: the leftmost', '10.0.0.1', '10.9.9.9, 10.8.8.8', '10.9.9.9'],
  ] as [string, string, string | string[] | undefined, string][])('%s', (_name, peer, xff, client) => {
    expect(trusted.clientIp(peer, xff)).toBe(client);
  });

  it('believes no one when no proxy is trusted', () => {
    expect(new TrustedProxies([]).clientIp('10.0.0.1', '1.2.3.4')).toBe('10.0.0.1');
  });
});
