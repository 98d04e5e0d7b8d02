// Stub HTTP/2 upstream (h2c, prior knowledge) for the HTTP/2 and gRPC scenarios: the same small
// JSON body as bench/upstream.mjs for GETs, and a gRPC echo for POSTs (the request message framed
// back as the response, status in the trailers). node:http2's core API, no grpc-js: what is
// measured is the proxy in front of it, and a light stub leaves the 2 cores to the proxies.
// Usage: node bench/h2-upstream.mjs PORT
import http2 from 'node:http2';

const port = Number(process.argv[2] ?? 9001);
const body = Buffer.from(JSON.stringify({ ok: true, service: 'stub-upstream', note: 'x'.repeat(64) }));
const server = http2.createServer();
server.on('stream', (stream, headers) => {
  stream.on('error', () => undefined);
  if (headers[':method'] !== 'POST') {
    stream.resume();
    stream.respond({ ':status': 200, 'content-type': 'application/json', 'content-length': body.length });
    stream.end(body);
    return;
  }
  const chunks = [];
  stream.on('data', (c) => chunks.push(c));
  stream.on('end', () => {
    if (stream.destroyed) return;
    // Trailers-only would be a refusal; a gRPC answer is headers, the message, then grpc-status.
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.end(Buffer.concat(chunks));
  });
});
server.listen(port, '127.0.0.1');
