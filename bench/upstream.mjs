// Stub upstream for benchmarks: answers every request with the same small JSON body, so what is
// measured is the proxy in front of it. Usage: node bench/upstream.mjs PORT
import http from 'node:http';

const port = Number(process.argv[2] ?? 9000);
const body = Buffer.from(JSON.stringify({ ok: true, service: 'stub-upstream', note: 'x'.repeat(64) }));
http
  .createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      res.end(body);
    });
  })
  .listen(port, '127.0.0.1');
