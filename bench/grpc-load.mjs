// A closed-loop load generator for the gRPC decision door (autocannon speaks only HTTP/1.1):
// `connections` checks in flight at all times over a few HTTP/2 channels, as Envoy keeps one
// connection per worker thread. Returns the parts of an autocannon result bench/run.mjs reads.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CHANNELS = 4;

let Client;
function clientClass() {
  if (Client === undefined) {
    // The door's own .proto files (Envoy's names and field numbers), as the built CLI ships them.
    const def = loadSync('envoy/service/auth/v3/external_auth.proto', { includeDirs: [path.join(root, 'dist/decisions/proto')], keepCase: true, longs: Number, enums: Number, defaults: false });
    Client = grpc.loadPackageDefinition(def).envoy.service.auth.v3.Authorization;
  }
  return Client;
}

/** A CheckRequest as Envoy sends one for GET `target` with `headers`, from a client on loopback. */
export function checkRequest(target, headers) {
  const host = 'bench.example.test';
  return {
    attributes: {
      source: { address: { socket_address: { address: '127.0.0.1', port_value: 40000 } } },
      request: { http: { method: 'GET', path: target, host, headers: { ':authority': host, ':method': 'GET', ':path': target, ...headers } } },
    },
  };
}

const percentile = (sorted, p) => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]);

/** Runs Check against `address` (HOST:PORT) for `seconds`; a check allowed (code 0) counts as 2xx. */
export async function grpcLoad({ address, request, connections, seconds }) {
  const Ctor = clientClass();
  // A local subchannel pool per client: otherwise all channels to one address share one connection.
  const clients = Array.from({ length: CHANNELS }, () => new Ctor(address, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }));
  await Promise.all(clients.map((c) => new Promise((resolve, reject) => c.waitForReady(Date.now() + 10_000, (err) => (err ? reject(err) : resolve())))));
  const latencies = [];
  let total = 0;
  let denied = 0;
  let errors = 0;
  const until = Date.now() + seconds * 1000;
  const worker = async (i) => {
    const client = clients[i % CHANNELS];
    while (Date.now() < until) {
      const t0 = process.hrtime.bigint();
      await new Promise((resolve) => {
        client.Check(request, (err, res) => {
          if (err) errors++;
          else {
            total++;
            if (res.status?.code) denied++;
          }
          latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
          resolve();
        });
      });
    }
  };
  const start = Date.now();
  await Promise.all(Array.from({ length: connections }, (_, i) => worker(i)));
  const elapsed = (Date.now() - start) / 1000;
  for (const c of clients) c.close();
  latencies.sort((a, b) => a - b);
  return {
    requests: { average: total / elapsed, total },
    latency: { p50: Number(percentile(latencies, 50).toFixed(2)), p99: Number(percentile(latencies, 99).toFixed(2)) },
    non2xx: denied,
    errors,
    timeouts: 0,
  };
}
