// Every listener starts the same way: bind, fail on the bind error rather than emit it later, and
// name the address it got (port 0 in tests, IPv6 in brackets) as the URL a client would use.
import type { AddressInfo, Server } from 'node:net';

/** Listens on host:port and returns `scheme://address:port`. */
export async function listenOn(server: Server, host: string, port: number, scheme: 'http' | 'https' = 'http'): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const a = server.address() as AddressInfo;
  return `${scheme}://${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}`;
}
