// A real Portcullis (startApp: the same composition `serve` runs) in front of a real recording
// upstream, and a raw HTTP/1.1 client, so a test can write exactly the bytes an attacker would
// (duplicate, mixed-case and "_" header names, unnormalised paths) and assert what arrived upstream.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type App, startApp } from '../../src/app.js';
import { createLogger } from '../../src/observability/logger.js';

export interface Arrival {
  readonly method: string;
  readonly url: string;
  readonly rawHeaders: readonly string[];
}

interface Answer {
  readonly status: number;
  readonly head: string;
  readonly body: string;
  /** The problem+json `code`, when the gateway refused. */
  readonly code: string | undefined;
}

export interface Gateway {
  readonly app: App;
  /** What the upstream received, in order; cleared by `send`. */
  readonly arrivals: Arrival[];
  /** One request on its own connection: `head` is the request line and header lines (no blank line). */
  send(requestLine: string, headerLines?: readonly string[], localAddress?: string): Promise<Answer>;
  stop(): Promise<void>;
}

/** Every value the upstream received for `name` (lower case), whatever its case. */
export function valuesOf(a: Arrival, name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < a.rawHeaders.length; i += 2) if (a.rawHeaders[i]!.toLowerCase() === name) out.push(a.rawHeaders[i + 1]!);
  return out;
}

/** Lower-case names of every header the upstream received. */
export function namesOf(a: Arrival): string[] {
  const out: string[] = [];
  for (let i = 0; i < a.rawHeaders.length; i += 2) out.push(a.rawHeaders[i]!.toLowerCase());
  return out;
}

/** Starts the gateway with the policy `yaml(upstreamUrl)`. */
export async function startGateway(yaml: (upstreamUrl: string) => string): Promise<Gateway> {
  const arrivals: Arrival[] = [];
  const upstream: Server = createServer((req: IncomingMessage, res) => {
    arrivals.push({ method: req.method ?? '', url: req.url ?? '', rawHeaders: [...req.rawHeaders] });
    req.resume();
    res.end('upstream');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  const dir = await mkdtemp(join(tmpdir(), 'pcs-gateway-'));
  await writeFile(join(dir, 'policy.yaml'), yaml(upstreamUrl));
  const app = await startApp({
    policyPath: join(dir, 'policy.yaml'),
    listen: { host: '127.0.0.1', port: 0 },
    admin: null,
    drainMs: 0,
    demo: false,
    watch: false,
    logger: createLogger({ level: 'silent' }),
  });
  const url = new URL(app.proxyUrl);
  const send = (requestLine: string, headerLines: readonly string[] = [], localAddress?: string): Promise<Answer> => {
    arrivals.length = 0;
    return new Promise((resolve, reject) => {
      // write, not end: a client that half-closes before the answer is treated as gone (abort).
      const socket = connect({ port: Number(url.port), host: url.hostname, localAddress }, () =>
        socket.write(`${requestLine}\r\nHost: ${url.host}\r\n${headerLines.map((l) => `${l}\r\n`).join('')}Connection: close\r\n\r\n`),
      );
      let data = '';
      socket.on('data', (d) => (data += d.toString()));
      socket.on('end', () => {
        const split = data.indexOf('\r\n\r\n');
        const body = data.slice(split + 4);
        let code: string | undefined;
        try {
          code = (JSON.parse(body) as { code?: string }).code;
        } catch {
          code = undefined;
        }
        resolve({ status: Number(data.split(' ')[1]), head: data.slice(0, split).toLowerCase(), body, code });
      });
      socket.on('error', reject);
    });
  };
  const stop = async (): Promise<void> => {
    await app.shutdown();
    upstream.closeAllConnections();
    await new Promise<void>((r) => upstream.close(() => r()));
    await rm(dir, { recursive: true, force: true });
  };
  return { app, arrivals, send, stop };
}
