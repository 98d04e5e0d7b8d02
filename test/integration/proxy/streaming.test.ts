// Bodies are streamed, never buffered: 50 MB each way through the built CLI, measuring the
// Portcullis process's own resident memory (not the test runner's).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../helpers/redis.js';

const SIZE = 50 * 1024 * 1024;
const chunk = Buffer.alloc(64 * 1024, 7);
const GC_EVERY_10MS = 'data:text/javascript,setInterval(()=>globalThis.gc(),10).unref()';
let upstream: Server;
let child: ChildProcess;
let base: string;

const rssOf = (pid: number): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;

beforeAll(async () => {
  upstream = createServer((req, res) => {
    if (req.method === 'POST') {
      let n = 0;
      req.on('data', (d: Buffer) => (n += d.length));
      req.on('end', () => res.end(String(n)));
      return;
    }
    const total = req.url === '/download?small' ? chunk.length * 16 : SIZE;
    res.writeHead(200, { 'content-length': total });
    let sent = 0;
    const pump = (): void => {
      while (sent < total) {
        sent += chunk.length;
        if (!res.write(chunk)) {
          res.once('drain', pump);
          return;
        }
      }
      res.end();
    };
    pump();
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-stream-'));
  writeFileSync(
    join(dir, 'p.yaml'),
    `version: 1\nupstreams: { app: { url: "http://127.0.0.1:${(upstream.address() as AddressInfo).port}" } }\nroutes:\n  - { name: all, match: { path: "/**" }, public: true }\n`,
  );
  const port = await freePort();
  // Garbage buffers are only reclaimed when V8 decides to collect; a frequent gc in the proxy makes
  // RSS track what is live (buffered), which is what this test is about.
  child = spawn(
    process.execPath,
    ['--expose-gc', '--import', GC_EVERY_10MS, 'dist/main.js', 'serve', '--policy', join(dir, 'p.yaml'), '--listen', `127.0.0.1:${port}`, '--admin', `127.0.0.1:${await freePort()}`],
    { stdio: 'ignore', env: { ...process.env, LOG_LEVEL: 'warn' } },
  );
  base = `http://127.0.0.1:${port}`;
  const until = Date.now() + 10_000;
  for (;;) {
    const ok = await request(`${base}/ready`).then(
      (r) => r.body.dump().then(() => true),
      () => false,
    );
    if (ok) break;
    if (Date.now() > until) throw new Error('portcullis did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
});

afterAll(async () => {
  child?.kill('SIGKILL');
  upstream.closeAllConnections();
  await new Promise<void>((r) => upstream.close(() => r()));
});

describe('streaming', () => {
  it('streams a 50 MB upload and a 50 MB download with under 30 MB of RSS growth in the proxy', async () => {
    // One small round trip each way first, so one-time costs (JIT, the upstream pool's first socket,
    // stream buffers) are not counted as growth: what is measured is what a 50 MB body adds.
    await upload(1024 * 1024);
    await download('?small');
    const before = rssOf(child.pid!);
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rssOf(child.pid!))), 20);
    try {
      expect(await upload(SIZE)).toBe(String(SIZE));
      expect(await download()).toBe(SIZE);
    } finally {
      clearInterval(sampler);
    }
    peak = Math.max(peak, rssOf(child.pid!));
    expect(peak - before, `peak RSS growth ${((peak - before) / 1048576).toFixed(1)} MB`).toBeLessThan(30 * 1024 * 1024);
  });
});

async function upload(size: number): Promise<string> {
  let produced = 0;
  const body = new Readable({
    read() {
      if (produced >= size) return void this.push(null);
      produced += chunk.length;
      this.push(chunk);
    },
  });
  const up = await request(`${base}/upload`, { method: 'POST', body, headers: { 'content-length': String(size) } });
  return up.body.text();
}

async function download(query = ''): Promise<number> {
  const down = await request(`${base}/download${query}`);
  let received = 0;
  for await (const d of down.body) received += (d as Buffer).length;
  return received;
}
