// The TLS front in process: node:http keeps enforcing its own limits on the sockets handed to it.
import { createServer } from 'node:http';
import tls from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import { TlsFiles } from '../../../src/config/tls-files.js';
import { TlsListener } from '../../../src/proxy/tls-listener.js';
import { createPki, SERVER_SAN } from '../../helpers/certs.js';

const closers: (() => unknown)[] = [];
afterAll(async () => {
  for (const c of closers) await c();
});

describe('TlsListener', () => {
  it("keeps node:http's header timeout on the sockets it hands over: a client that never finishes its headers gets 408", async () => {
    const pki = createPki('slow');
    const pem = pki.issue('server', { cn: 'slow', san: SERVER_SAN });
    const files = new TlsFiles({ cert: pem.cert, key: pem.key });
    const http = createServer({ headersTimeout: 300, requestTimeout: 600, connectionsCheckingInterval: 100 }, (_req, res) => res.end('ok'));
    const listener = new TlsListener({ files, clientAuth: 'none', http });
    const url = await listener.listen('127.0.0.1', 0);
    closers.push(
      () => http.close(),
      () => listener.close(),
    );
    const socket = tls.connect({ host: '127.0.0.1', port: Number(new URL(url).port), ca: pki.caPem(), servername: 'localhost' }, () => socket.write('GET / HTTP/1.1\r\nHost: x\r\n'));
    const answer = await new Promise<string>((resolve) => {
      let data = '';
      socket.on('data', (d) => (data += d));
      socket.on('close', () => resolve(data));
      setTimeout(() => resolve(`still open: ${data}`), 10_000).unref();
    });
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
  });
});
