// Stub upstream for benchmarks: answers every request with the same small JSON body, so what is
// measured is the proxy in front of it. Usage: node bench/upstream.mjs PORT
import http from 'node:http';

const port = Number(process.argv[2] ?? 9000);
const body = Buffer.from(JSON.stringify({ ok: true, service: 'stub-upstream', note: 'x'.repeat(64) }));
// Under /v1/usage/ the answer reports what it consumed, as a metered LLM upstream does.
const metered = Buffer.from(JSON.stringify({ ok: true, service: 'stub-upstream', usage: { prompt_tokens: 30, completion_tokens: 12, total_tokens: 42 } }));
http
  .createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url?.startsWith('/v1/usage/')) {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': metered.length, 'x-usage-tokens': '42' });
        res.end(metered);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      res.end(body);
    });
  })
  .listen(port, '127.0.0.1');
