// The Node ceiling: a bare undici proxy with no policy at all (pool.stream, hop-by-hop headers
// dropped, nothing else). Portcullis is measured as a ratio of this in the same run.
// Usage: node bench/bare-proxy.mjs PORT UPSTREAM_URL [CERT KEY]   (with CERT and KEY: HTTPS, as node:https does it)
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { Pool } from 'undici';

const [port, upstream, cert, key] = [Number(process.argv[2]), process.argv[3], process.argv[4], process.argv[5]];
const pool = new Pool(upstream, { connections: 128 });
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host']);

const handler = (req, res) => {
  const headers = {};
  for (const k in req.headers) if (!HOP.has(k)) headers[k] = req.headers[k];
  const body = req.method === 'GET' || req.method === 'HEAD' ? null : req;
  pool.stream(
    { path: req.url, method: req.method, headers, body },
    ({ statusCode, headers: h }) => {
      const out = {};
      for (const k in h) if (!HOP.has(k)) out[k] = h[k];
      res.writeHead(statusCode, out);
      return res;
    },
    (err) => {
      if (err) {
        if (!res.headersSent) res.writeHead(502);
        res.end();
      }
    },
  );
};
(cert === undefined ? http.createServer(handler) : https.createServer({ cert: readFileSync(cert), key: readFileSync(key), minVersion: 'TLSv1.2', ALPNProtocols: ['http/1.1'] }, handler)).listen(
  port,
  '127.0.0.1',
);
