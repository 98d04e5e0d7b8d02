// The upstream most tests need: a real HTTP server on port 0 that reads every request body and
// answers 200 "ok".
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface OkUpstream {
  /** http://127.0.0.1:port */
  readonly url: string;
  close(): Promise<void>;
}

export async function okUpstream(): Promise<OkUpstream> {
  const server = createServer((req, res) => {
    req.resume();
    res.end('ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
