// The Node ceiling: a bare undici proxy with no policy at all (pool.stream, hop-by-hop headers
// dropped, nothing else). Portcullis is measured as a ratio of this in the same run.
// Usage: node bench/bare-proxy.mjs PORT UPSTREAM_URL
import http from 'node:http';
import { Pool } from 'undici';

const [port, upstream] = [Number(process.argv[2]), process.argv[3]];
const pool = new Pool(upstream, { connections: 128 });
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host']);

http
  .createServer((req, res) => {
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
  })
  .listen(port, '127.0.0.1');
