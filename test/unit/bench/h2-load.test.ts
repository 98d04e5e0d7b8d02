// The HTTP/2 side of `npm run bench`: the h2c stub upstream, the bare node:http2 proxy (h2c and
// over TLS) and the closed-loop HTTP/2 and gRPC load generators, as real processes and sockets.
import { type ChildProcess, spawn } from 'node:child_process';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs module without type declarations
import { grpcUnaryLoad, h2Load } from '../../../bench/h2-load.mjs';
import { createPki, SERVER_SAN } from '../../helpers/certs.js';
import { root } from '../../helpers/cli.js';
import { freePort } from '../../helpers/ports.js';

interface LoadResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number };
  non2xx: number;
  errors: number;
}

const children: ChildProcess[] = [];
/** `node bench/<script> PORT …args`, listening once it answers an HTTP/2 GET. */
async function startScript(script: string, args: string[] = [], ca?: Buffer): Promise<string> {
  const port = await freePort();
  const child = spawn(process.execPath, [`bench/${script}`, String(port), ...args], { cwd: root, stdio: 'ignore' });
  children.push(child);
  const url = `${ca ? 'https' : 'http'}://127.0.0.1:${port}`;
  const until = Date.now() + 15_000;
  while (Date.now() < until) {
    const up = await new Promise<boolean>((resolve) => {
      const s = http2.connect(url, ca ? { ca, servername: 'localhost' } : {});
      s.once('connect', () => {
        s.close();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (up) return url;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`bench/${script} never listened on ${port}`);
}

let upstream: string;
beforeAll(async () => {
  upstream = await startScript('h2-upstream.mjs');
}, 30_000);
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
});

const expectAllOk = (r: LoadResult): void => {
  expect(r.requests.total).toBeGreaterThan(0);
  expect([r.non2xx, r.errors]).toEqual([0, 0]);
  expect(r.latency.p99).toBeGreaterThanOrEqual(r.latency.p50);
};

describe('the HTTP/2 bench targets', () => {
  it('the bare h2c proxy carries GETs and gRPC unary calls to the stub upstream, every one answered OK', async () => {
    const bare = await startScript('bare-h2-proxy.mjs', [upstream]);
    expectAllOk(await h2Load({ url: bare, path: '/v1/reports/q1', connections: 8, seconds: 1 }));
    expectAllOk(await grpcUnaryLoad({ address: new URL(bare).host, connections: 8, seconds: 1 }));
  }, 30_000);

  it('the bare proxy over TLS speaks h2 by ALPN, and the loads trust the certificate of the run', async () => {
    const pki = createPki('bench-h2');
    const server = pki.issue('server', { cn: 'localhost', san: SERVER_SAN });
    const bare = await startScript('bare-h2-proxy.mjs', [upstream, server.cert, server.key], pki.caPem());
    expectAllOk(await h2Load({ url: bare, path: '/v1/reports/q1', ca: pki.ca, connections: 8, seconds: 1 }));
    expectAllOk(await grpcUnaryLoad({ address: new URL(bare).host, ca: pki.ca, connections: 8, seconds: 1 }));
  }, 30_000);
});

describe('the HTTP/2 load generators', () => {
  it('count a refused GET or a gRPC call answered with a non-OK status as non-2xx, not as lost', async () => {
    // 404 to GETs; trailers-only PERMISSION_DENIED to gRPC calls, as a policy refusal comes back.
    const server = http2.createServer();
    server.on('stream', (stream, headers) => {
      stream.resume();
      if (headers[':method'] === 'GET') stream.respond({ ':status': 404 }, { endStream: true });
      else stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '7', 'grpc-message': 'PERMISSION_DENIED' }, { endStream: true });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
      const get: LoadResult = await h2Load({ url: `http://${address}`, path: '/nope', connections: 4, seconds: 0.5 });
      const call: LoadResult = await grpcUnaryLoad({ address, connections: 4, seconds: 0.5 });
      for (const r of [get, call]) {
        expect(r.requests.total).toBeGreaterThan(0);
        expect([r.non2xx, r.errors]).toEqual([r.requests.total, 0]);
      }
    } finally {
      server.close();
    }
  }, 30_000);
});
