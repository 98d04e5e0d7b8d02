// An Envoy ext_authz client for tests: @grpc/grpc-js with the door's own .proto files, so a test
// speaks exactly the wire format Envoy does (the files keep Envoy's names and field numbers).
import * as grpc from '@grpc/grpc-js';
import { authorizationService, type CheckRequest, type CheckResponse } from '../../src/decisions/grpc.js';

export interface ExtAuthzClient {
  check(req: CheckRequest): Promise<CheckResponse>;
  close(): void;
}

/** A client of the Authorization service at HOST:PORT (plaintext, as Envoy's `envoy_grpc` cluster in a mesh). */
export function extAuthzClient(address: string): ExtAuthzClient {
  const Client = grpc.makeGenericClientConstructor(authorizationService(), 'Authorization');
  const client = new Client(address, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    Check(req: CheckRequest, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: CheckResponse) => void): void;
  };
  return {
    check: (req) =>
      new Promise((resolve, reject) => {
        client.Check(req, new grpc.Metadata(), { deadline: Date.now() + 15_000 }, (err, res) => (err ? reject(err) : resolve(res as CheckResponse)));
      }),
    close: () => client.close(),
  };
}

/** A CheckRequest as Envoy sends one: pseudo-headers in `headers` too, the client in `source`. */
export function checkRequest(method: string, path: string, headers: Record<string, string> = {}, opts: { host?: string; client?: string } = {}): CheckRequest {
  const host = opts.host ?? 'api.example.test';
  return {
    attributes: {
      source: { address: { socket_address: { address: opts.client ?? '203.0.113.9' } } },
      request: { http: { method, path, host, headers: { ':authority': host, ':method': method, ':path': path, ...headers } } },
    },
  };
}
