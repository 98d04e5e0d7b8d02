// The HTTP/2 baseline: a bare node:http2 proxy with no policy at all (compat API in, one h2c
// session out to the upstream, hop-by-hop headers dropped, trailers passed so gRPC's status gets
// through). Portcullis's HTTP/2 and gRPC rows are measured as a ratio of this in the same run.
// Usage: node bench/bare-h2-proxy.mjs PORT H2C_UPSTREAM_URL [CERT KEY]   (with CERT and KEY: h2 over TLS, ALPN h2; without: h2c)
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';

const [port, upstream, cert, key] = [Number(process.argv[2]), process.argv[3], process.argv[4], process.argv[5]];
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host']);
let session;
const upstreamSession = () => {
  if (session === undefined || session.closed || session.destroyed) {
    session = http2.connect(upstream);
    session.on('error', () => undefined);
  }
  return session;
};

const handler = (req, res) => {
  const headers = { ':method': req.method, ':path': req.url };
  for (const k in req.headers) if (k[0] !== ':' && !HOP.has(k)) headers[k] = req.headers[k];
  const bodyless = req.method === 'GET' || req.method === 'HEAD';
  const up = upstreamSession().request(headers, { endStream: bodyless });
  if (!bodyless) req.pipe(up);
  up.on('response', (h) => {
    const out = {};
    for (const k in h) if (k[0] !== ':') out[k] = h[k];
    res.writeHead(h[':status'], out);
    up.pipe(res);
  });
  up.on('trailers', (t) => res.addTrailers(t));
  up.on('error', () => {
    if (!res.headersSent) res.writeHead(502);
    res.end();
  });
};
(cert === undefined ? http2.createServer(handler) : http2.createSecureServer({ cert: readFileSync(cert), key: readFileSync(key), minVersion: 'TLSv1.2', ALPNProtocols: ['h2'] }, handler)).listen(
  port,
  '127.0.0.1',
);
