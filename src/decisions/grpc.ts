// The Envoy ext_authz door over gRPC: service envoy.service.auth.v3.Authorization, method Check.
// It translates a CheckRequest into the door-neutral DecisionInput, asks the DecisionService (the
// same engine, limits and audit every door uses) and writes the DecisionResult back as Envoy's
// CheckResponse. The messages come from the minimal .proto files beside this one, which keep
// Envoy's package names and field numbers, so Envoy, Istio and any ext_authz client speak to it.
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import type { Logger } from 'pino';
import { problemJson } from '../core/reasons.js';
import { faultContained } from '../observability/faults.js';
import type { DecisionInput, DecisionResult, DecisionService } from './decide.js';

/** The CheckRequest fields the door reads, as @grpc/proto-loader decodes them (keepCase). */
export interface CheckRequest {
  attributes?: {
    source?: { address?: { socket_address?: { address?: string } } };
    request?: {
      http?: {
        method?: string;
        headers?: Record<string, string>;
        path?: string;
        host?: string;
        header_map?: { headers?: { key?: string; value?: string; raw_value?: Buffer }[] };
      };
    };
  };
}

interface HeaderValueOption {
  header: { key: string; value: string };
  append: { value: boolean };
}

interface StructValue {
  fields: Record<string, { stringValue: string }>;
}

export interface CheckResponse {
  status: { code: number; message?: string };
  ok_response?: { headers: HeaderValueOption[]; headers_to_remove: readonly string[]; response_headers_to_add?: HeaderValueOption[] };
  denied_response?: { status: { code: number }; headers: HeaderValueOption[]; body: string };
  dynamic_metadata?: StructValue;
}

/** google.rpc.Code values the door answers with. */
const RPC = Object.freeze({
  OK: 0,
  INVALID_ARGUMENT: 3,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
});

/**
 * The google.rpc code for a denial's HTTP status. Envoy answers the client with denied_response's
 * status either way; the code is what Envoy's logs, stats and failure_mode see.
 */
export function rpcCodeOf(status: number): number {
  switch (status) {
    case 401:
      return RPC.UNAUTHENTICATED;
    case 403:
      return RPC.PERMISSION_DENIED;
    case 404:
      return RPC.NOT_FOUND;
    case 429:
      return RPC.RESOURCE_EXHAUSTED;
    case 502:
    case 503:
    case 504:
      return RPC.UNAVAILABLE;
    default:
      return status >= 500 ? RPC.INTERNAL : RPC.INVALID_ARGUMENT;
  }
}

/**
 * The gRPC peer as grpc-js spells it ("10.0.0.7:53124", "::ffff:10.0.0.7:53124") → its address.
 * The port is always there for TCP, so the last colon separates it, IPv6 included.
 */
export function peerAddress(peer: string): string {
  const colon = peer.lastIndexOf(':');
  if (colon === -1) return peer;
  for (let i = colon + 1; i < peer.length; i++) {
    const c = peer.charCodeAt(i);
    if (c < 48 || c > 57) return peer;
  }
  return colon === peer.length - 1 ? peer : peer.slice(0, colon);
}

/**
 * CheckRequest → DecisionInput. The target is Envoy's `path`, which carries the query and is not
 * decoded, so the core canonicalises it exactly as the proxy does. Envoy also lists the HTTP/2
 * pseudo-headers (":path", ":authority", …) in `headers`; they are not request headers and their
 * values arrive in the fields of their own. An absent field stays empty, so the core refuses the
 * request as malformed (400) and audits it, instead of this door inventing a default.
 */
function toDecisionInput(req: CheckRequest, peer: string): DecisionInput {
  const http = req.attributes?.request?.http;
  const rawHeaders: string[] = [];
  const headers = http?.headers;
  if (headers !== undefined) {
    for (const name in headers) {
      if (name.charCodeAt(0) === 58 /* : */) continue;
      rawHeaders.push(name, headers[name] as string);
    }
  }
  const lines = http?.header_map?.headers;
  if (lines !== undefined) {
    for (const h of lines) {
      const name = h.key ?? '';
      if (name === '' || name.charCodeAt(0) === 58 /* : */) continue;
      // latin1: one char per byte, as node:http hands the proxy a header value.
      rawHeaders.push(name, h.raw_value !== undefined && h.raw_value.length > 0 ? h.raw_value.toString('latin1') : (h.value ?? ''));
    }
  }
  const client = req.attributes?.source?.address?.socket_address?.address;
  return {
    door: 'envoy-grpc',
    method: http?.method ?? '',
    target: http?.path ?? '',
    host: http?.host ?? '',
    rawHeaders,
    peer: peerAddress(peer),
    ...(client ? { clientAddress: client } : {}),
  };
}

// Envoy's default for these is to set (replace) on ok_response, but an explicit false says so
// whatever the Envoy version: an identity header must never be appended to a client's copy.
function setHeaders(pairs: readonly (readonly [string, string])[]): HeaderValueOption[] {
  const out: HeaderValueOption[] = new Array(pairs.length);
  for (let i = 0; i < pairs.length; i++) {
    const [key, value] = pairs[i] as readonly [string, string];
    out[i] = { header: { key, value }, append: { value: false } };
  }
  return out;
}

function metadataOf(m: DecisionResult['metadata']): StructValue | undefined {
  let fields: StructValue['fields'] | undefined;
  if (m.subject !== undefined) (fields ??= {}).subject = { stringValue: m.subject };
  if (m.tenant !== undefined) (fields ??= {}).tenant = { stringValue: m.tenant };
  if (m.route !== undefined) (fields ??= {}).route = { stringValue: m.route };
  return fields === undefined ? undefined : { fields };
}

const PROBLEM_TYPE = 'content-type';

/** DecisionResult → CheckResponse. */
function toCheckResponse(result: DecisionResult): CheckResponse {
  const metadata = metadataOf(result.metadata);
  let response: CheckResponse;
  if (result.allowed) {
    response = { status: { code: RPC.OK }, ok_response: { headers: setHeaders(result.upstreamHeaders), headers_to_remove: result.removeHeaders } };
    // RateLimit headers of an allowed request, for the client's response.
    if (result.responseHeaders.length > 0) (response.ok_response as NonNullable<CheckResponse['ok_response']>).response_headers_to_add = setHeaders(result.responseHeaders);
  } else {
    const headers = setHeaders(result.responseHeaders);
    if (result.body !== '' && !result.responseHeaders.some(([name]) => name.toLowerCase() === PROBLEM_TYPE)) {
      headers.push({ header: { key: PROBLEM_TYPE, value: 'application/problem+json' }, append: { value: false } });
    }
    response = {
      status: { code: rpcCodeOf(result.status), message: result.code ?? '' },
      denied_response: { status: { code: result.status }, headers, body: result.body },
    };
  }
  if (metadata !== undefined) response.dynamic_metadata = metadata;
  return response;
}

/** Answered when the decision itself failed (a bug or a fault): Envoy denies, nothing leaks. */
const FAULT: CheckResponse = Object.freeze({
  status: { code: RPC.INTERNAL, message: 'GATEWAY_ERROR' },
  denied_response: {
    status: { code: 500 },
    headers: [{ header: { key: PROBLEM_TYPE, value: 'application/problem+json' }, append: { value: false } }],
    body: problemJson('GATEWAY_ERROR', 500, 'Internal Server Error', 'The gateway failed to handle this request.'),
  },
}) as CheckResponse;

const PROTO_ROOT = fileURLToPath(new URL('./proto', import.meta.url));
const PROTO_FILE = 'envoy/service/auth/v3/external_auth.proto';

/** The Authorization service definition, for the server here and for clients (tests, bench). */
export function authorizationService(): grpc.ServiceDefinition {
  const def = loadSync(PROTO_FILE, { includeDirs: [PROTO_ROOT], keepCase: true, longs: Number, enums: Number, defaults: false, oneofs: false });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    envoy: { service: { auth: { v3: { Authorization: grpc.ServiceClientConstructor } } } };
  };
  return pkg.envoy.service.auth.v3.Authorization.service;
}

/** What the door needs of the DecisionService (tests hand it a scripted one). */
type Decider = Pick<DecisionService, 'decide'>;

export interface GrpcDecisionOptions {
  readonly decisions: Decider;
  readonly logger: Logger;
}

export class GrpcDecisionServer {
  readonly #decisions: Decider;
  readonly #logger: Logger;
  readonly #server: grpc.Server;

  constructor(opts: GrpcDecisionOptions) {
    this.#decisions = opts.decisions;
    this.#logger = opts.logger;
    this.#server = new grpc.Server();
    this.#server.addService(authorizationService(), { Check: (call: grpc.ServerUnaryCall<CheckRequest, CheckResponse>, done: grpc.sendUnaryData<CheckResponse>) => this.#check(call, done) });
  }

  #check(call: grpc.ServerUnaryCall<CheckRequest, CheckResponse>, done: grpc.sendUnaryData<CheckResponse>): void {
    const fault = (err: unknown): void => {
      faultContained(this.#logger, 'decision', err, { door: 'envoy-grpc' });
      done(null, FAULT);
    };
    try {
      const result = this.#decisions.decide(toDecisionInput(call.request, call.getPeer()));
      if (result instanceof Promise) result.then((r) => done(null, toCheckResponse(r)), fault);
      else done(null, toCheckResponse(result));
    } catch (err) {
      fault(err);
    }
  }

  /** Binds HOST:PORT (port 0: any free one) and resolves to the address it listens on. */
  listen(host: string, port: number): Promise<string> {
    const hostPart = host.includes(':') ? `[${host}]` : host;
    return new Promise((resolve, reject) => {
      this.#server.bindAsync(`${hostPart}:${port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => {
        if (err) reject(new Error(`--decisions-grpc ${hostPart}:${port}: ${err.message}`));
        else resolve(`${hostPart}:${bound}`);
      });
    });
  }

  /** Stops accepting, lets the checks in flight finish for up to `drainMs`, then cuts the rest. */
  shutdown(drainMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#server.forceShutdown();
        resolve();
      }, drainMs);
      timer.unref();
      this.#server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
