// A real HTTP receiver for webhook tests: stores every NDJSON line it accepts, checks signatures,
// and can be told to answer 503/429 or be stopped and started on the same port.

import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export class Receiver {
  readonly lines: string[] = [];
  badSignatures = 0;
  requests = 0;
  mode: 'ok' | '503' | '429' = 'ok';
  #server: http.Server | undefined;
  port = 0;
  readonly #secret: string;

  constructor(secret: string) {
    this.#secret = secret;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/ingest`;
  }

  async start(): Promise<void> {
    this.#server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.requests++;
        if (this.mode === '503') return void res.writeHead(503).end();
        if (this.mode === '429') return void res.writeHead(429, { 'retry-after': '1' }).end();
        const body = Buffer.concat(chunks).toString('utf8');
        const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(String(req.headers['x-portcullis-signature'] ?? ''));
        const want = m ? createHmac('sha256', this.#secret).update(`${m[1]}.${body}`).digest() : undefined;
        if (!m || !want || !timingSafeEqual(want, Buffer.from(m[2]!, 'hex'))) {
          this.badSignatures++;
          return void res.writeHead(401).end();
        }
        for (const l of body.split('\n')) if (l !== '') this.lines.push(l);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => this.#server!.listen(this.port, '127.0.0.1', r));
    this.port = (this.#server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    const s = this.#server;
    this.#server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
}
