// The upstream `portcullis bench` measures against when no --upstream is given: every request gets
// the same small JSON body. It runs in a worker thread so it does not share the proxy's event loop.
import { Worker } from 'node:worker_threads';

const STUB_SOURCE = `
const http = require('node:http');
const { parentPort } = require('node:worker_threads');
const body = Buffer.from(JSON.stringify({ ok: true, service: 'portcullis-bench-stub', note: 'x'.repeat(64) }));
const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
    res.end(body);
  });
});
server.keepAliveTimeout = 60000;
server.listen(0, '127.0.0.1', () => parentPort.postMessage(server.address().port));
`;

export interface Stub {
  readonly url: string;
  close(): Promise<void>;
}

export function startStub(): Promise<Stub> {
  const worker = new Worker(STUB_SOURCE, { eval: true });
  return new Promise<Stub>((resolve, reject) => {
    worker.once('error', reject);
    worker.once('message', (port: number) => {
      worker.off('error', reject);
      resolve({ url: `http://127.0.0.1:${port}`, close: async () => void (await worker.terminate()) });
    });
  });
}
