// A SIGTERM drain says goodbye: idle keep-alive connections are closed cleanly at once, and the
// responses still in flight on kept-alive (and pipelined) connections carry `Connection: close`,
// so no client reuses a connection the server is about to close. Through the built CLI.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBuiltCli, type Serving, serveCli } from '../helpers/cli.js';

let upstream: Server;
const arrived: string[] = [];
let child: ChildProcess;
let port: number;
let serving: Serving;

beforeAll(async () => {
  requireBuiltCli();
  upstream = createServer((req, res) => {
    arrived.push(req.url ?? '');
    setTimeout(() => res.end(`answer:${req.url}`), req.url?.startsWith('/slow') ? 1_500 : 0);
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-drain-'));
  const policy = join(dir, 'policy.yaml');
  writeFileSync(
    policy,
    `version: 1
upstreams: { app: { url: "http://127.0.0.1:${(upstream.address() as AddressInfo).port}", timeouts: { response: 10s } } }
routes:
  - { name: open, match: { path: "/**" }, public: true }
`,
  );
  serving = await serveCli(policy, {}, [], { drain: '20s' });
  child = serving.child;
  port = serving.port;
});

afterAll(async () => {
  await serving?.stop();
  upstream?.closeAllConnections();
  await new Promise<void>((r) => upstream?.close(() => r()));
});

/** A raw keep-alive client connection that records what it receives and how it ended. */
class Client {
  readonly socket: Socket;
  text = '';
  ended = false; // the server closed its side cleanly (FIN)
  error: string | undefined;
  readonly closed: Promise<void>;
  constructor() {
    this.socket = connect(port, '127.0.0.1');
    this.socket.on('data', (d) => (this.text += d.toString()));
    this.socket.on('end', () => (this.ended = true));
    this.socket.on('error', (e: NodeJS.ErrnoException) => (this.error = e.code ?? e.message));
    this.closed = new Promise((r) => this.socket.once('close', () => r()));
  }
  async connected(): Promise<void> {
    if (this.socket.readyState !== 'open') await new Promise((r) => this.socket.once('connect', r));
  }
  get(...paths: string[]): void {
    this.socket.write(paths.map((p) => `GET ${p} HTTP/1.1\r\nHost: x\r\n\r\n`).join(''));
  }
  async waitFor(text: string): Promise<void> {
    const until = Date.now() + 10_000;
    while (!this.text.includes(text)) {
      if (Date.now() > until) throw new Error(`no "${text}" in ${JSON.stringify(this.text)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  /** The head of each response received, lower-cased. */
  heads(): string[] {
    return this.text
      .split(/(?=HTTP\/1\.1 )/)
      .filter((r) => r.startsWith('HTTP/1.1 '))
      .map((r) => r.slice(0, r.indexOf('\r\n\r\n')).toLowerCase());
  }
}

describe('SIGTERM drain', () => {
  it('closes idle keep-alive connections and marks the responses still in flight Connection: close', async () => {
    const idle = new Client();
    await idle.connected();
    idle.get('/warm');
    await idle.waitFor('answer:/warm');
    expect(idle.heads()[0]).toContain('connection: keep-alive');

    const single = new Client();
    const pipelined = new Client();
    await Promise.all([single.connected(), pipelined.connected()]);
    single.get('/slow/single');
    pipelined.get('/slow/first', '/slow/second');
    const until = Date.now() + 10_000;
    while (!['/slow/single', '/slow/first', '/slow/second'].every((p) => arrived.includes(p)) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));

    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');

    // The idle connection is closed at once and cleanly (FIN, not a reset), with nothing sent on it.
    await idle.closed;
    expect(idle.ended).toBe(true);
    expect(idle.error).toBeUndefined();
    expect(idle.heads()).toHaveLength(1);

    // In-flight responses are delivered whole and say the connection closes; then it does.
    await Promise.all([single.closed, pipelined.closed]);
    expect(single.text).toContain('answer:/slow/single');
    expect(single.heads()).toHaveLength(1);
    expect(single.heads()[0]).toMatch(/^http\/1\.1 200/);
    expect(single.heads()[0]).toContain('connection: close');
    expect(single.error).toBeUndefined();

    expect(pipelined.text).toContain('answer:/slow/first');
    expect(pipelined.text).toContain('answer:/slow/second');
    const heads = pipelined.heads();
    expect(heads).toHaveLength(2);
    expect(heads[1]).toContain('connection: close');
    expect(pipelined.error).toBeUndefined();

    expect(await exited).toBe(0);
  });
});
