// The demo upstream `serve --demo` starts: answers every request with what it received (method,
// path, headers, body size) as JSON, so a person can see what Portcullis forwarded.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';

export interface EchoUpstream {
  readonly url: string;
  close(): Promise<void>;
}

export async function startEchoUpstream(host = '127.0.0.1', port = 0): Promise<EchoUpstream> {
  const server: Server = createServer((req, res) => {
    let bytes = 0;
    req.on('data', (chunk: Buffer) => (bytes += chunk.length));
    req.on('end', () => {
      const body = JSON.stringify({ service: 'portcullis-demo-echo', method: req.method, path: req.url, headers: req.headers, bodyBytes: bytes }, null, 2);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  const a = server.address() as AddressInfo;
  return {
    url: `http://${host}:${a.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

// `node dist/demo/echo-upstream.js [port]`: the demo upstream on its own (docker-compose uses it).
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const port = Number(process.argv[2] ?? process.env.PORT ?? 3000);
  void startEchoUpstream(process.env.HOST ?? '0.0.0.0', port).then((e) => console.log(`echo upstream on ${e.url}`));
}
