// The HTTP decision listener (`serve --decisions HOST:PORT`): three doors on one node:http server,
// each reading the original request the way its data plane sends it and answering the way that
// data plane understands.
//
//   /envoy…         Envoy ext_authz (HTTP service, `path_prefix: /envoy`): the original method, the
//                   original path after the prefix, the original headers. 200 with the identity
//                   headers (and x-envoy-auth-headers-to-remove) allows; the real status denies.
//   /forward-auth   Traefik ForwardAuth, Caddy forward_auth, APISIX forward-auth: the original request
//                   in X-Forwarded-Method, -Proto, -Host, -Uri and -For. 200 allows; the real status,
//                   headers and body deny.
//   /nginx          nginx auth_request: X-Original-URI and X-Original-Method (names configurable),
//                   Host as nginx sends it. nginx turns any status but 2xx, 401 and 403 into a 500,
//                   so every denial other than a 401 is a 403 carrying the real status and code in
//                   X-Portcullis-Status and X-Portcullis-Code (and Retry-After) for an error_page remap.
//
// The X-Forwarded-*/X-Original-* values are the request being decided, so they are believed only
// from a trusted proxy: the decision core refuses any other peer before reading them.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { deny, PROBLEM_CONTENT_TYPE, problemBody } from '../core/reasons.js';
import { listenOn } from '../listen.js';
import { faultContained } from '../observability/faults.js';
import { newRequestId } from '../observability/request-id.js';
import { firstHeader } from '../request-headers.js';
import type { DecisionDoor, DecisionInput, DecisionResult, DecisionService } from './decide.js';

export interface DecisionHttpOptions {
  readonly service: DecisionService;
  readonly logger: Logger;
  /** The header nginx puts the original URI in (default X-Original-URI). */
  readonly nginxUriHeader?: string | undefined;
  /** The header nginx puts the original method in (default X-Original-Method). */
  readonly nginxMethodHeader?: string | undefined;
}

const NGINX_DEFAULTS = Object.freeze({ uriHeader: 'x-original-uri', methodHeader: 'x-original-method' });
/** Where nginx's mode carries the real answer, since nginx itself only passes on a 401 or a 403. */
const NGINX_STATUS_HEADER = 'x-portcullis-status';
const NGINX_CODE_HEADER = 'x-portcullis-code';
const ENVOY_PREFIX = '/envoy';

const NOT_A_DOOR = problemBody(deny('ROUTE_NOT_FOUND', 'The decision endpoints are /envoy (Envoy ext_authz), /forward-auth and /nginx.'), '');

export class DecisionHttpServer {
  readonly #server: Server;
  readonly #service: DecisionService;
  readonly #logger: Logger;
  readonly #uriHeader: string;
  readonly #methodHeader: string;
  readonly #sockets = new Set<Socket>();

  constructor(options: DecisionHttpOptions) {
    this.#service = options.service;
    this.#logger = options.logger;
    this.#uriHeader = (options.nginxUriHeader ?? NGINX_DEFAULTS.uriHeader).toLowerCase();
    this.#methodHeader = (options.nginxMethodHeader ?? NGINX_DEFAULTS.methodHeader).toLowerCase();
    // Data planes keep their connections to the decider open (nginx's upstream keepalive_timeout is
    // 60 s): closing an idle one first could race a request they are about to send on it.
    this.#server = createServer(
      { insecureHTTPParser: false, maxHeaderSize: 16 * 1024, requestTimeout: 30_000, headersTimeout: 10_000, keepAliveTimeout: 75_000, requireHostHeader: false, joinDuplicateHeaders: false },
      (req, res) => this.#request(req, res),
    );
    this.#server.on('connection', (s: Socket) => {
      this.#sockets.add(s);
      s.once('close', () => this.#sockets.delete(s));
    });
    this.#server.on('clientError', (_err: Error, socket: Socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      socket.destroy();
    });
  }

  listen(host: string, port: number): Promise<string> {
    return listenOn(this.#server, host, port);
  }

  /** Stops accepting; decisions in flight (at most a store round trip) finish within `drainMs`. */
  async close(drainMs: number): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeIdleConnections();
    const timer = setTimeout(() => {
      for (const s of this.#sockets) s.destroy();
    }, drainMs);
    await closed;
    clearTimeout(timer);
  }

  #request(req: IncomingMessage, res: ServerResponse): void {
    res.on('error', () => res.destroy());
    // The decision request has no body worth reading (a data plane sends none, or the original's).
    req.resume();
    try {
      const input = this.#inputOf(req);
      if (input === undefined) {
        res.writeHead(404, { 'content-type': PROBLEM_CONTENT_TYPE, 'content-length': Buffer.byteLength(NOT_A_DOOR), 'cache-control': 'no-store' }).end(NOT_A_DOOR);
        return;
      }
      const result = this.#service.decide(input);
      if (result instanceof Promise) {
        result.then(
          (r) => this.#answer(res, input.door, r),
          (err: unknown) => this.#fault(res, err),
        );
      } else {
        this.#answer(res, input.door, result);
      }
    } catch (err) {
      this.#fault(res, err);
    }
  }

  #inputOf(req: IncomingMessage): DecisionInput | undefined {
    const url = req.url ?? '';
    const raw = req.rawHeaders;
    const peer = req.socket.remoteAddress ?? '';
    const connection = req.socket;
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    if (path === '/forward-auth') {
      const target = firstHeader(raw, 'x-forwarded-uri');
      const method = firstHeader(raw, 'x-forwarded-method');
      const host = firstHeader(raw, 'x-forwarded-host');
      return {
        door: 'forward-auth',
        method: method ?? '',
        target: target ?? '',
        host: host ?? '',
        rawHeaders: raw,
        peer,
        connection,
        refuse: target === undefined || method === undefined || host === undefined ? MISSING_FORWARDED : undefined,
      };
    }
    if (path === '/nginx') {
      const target = firstHeader(raw, this.#uriHeader);
      const method = firstHeader(raw, this.#methodHeader);
      return {
        door: 'nginx',
        method: method ?? '',
        target: target ?? '',
        host: firstHeader(raw, 'host') ?? '',
        rawHeaders: raw,
        peer,
        connection,
        refuse: target === undefined || method === undefined ? this.#missingOriginal() : undefined,
      };
    }
    if (url.startsWith(ENVOY_PREFIX) && (url.length === ENVOY_PREFIX.length || url[ENVOY_PREFIX.length] === '/' || url[ENVOY_PREFIX.length] === '?')) {
      const target = url.slice(ENVOY_PREFIX.length);
      return {
        door: 'envoy-http',
        method: req.method ?? '',
        target: target === '' || target[0] === '?' ? `/${target}` : target,
        host: firstHeader(raw, 'host') ?? '',
        rawHeaders: raw,
        peer,
        connection,
      };
    }
    return undefined;
  }

  #missingOriginal() {
    return deny('BAD_REQUEST', `nginx must send the original request in ${this.#uriHeader} and ${this.#methodHeader} (see the shipped snippet).`);
  }

  #answer(res: ServerResponse, door: DecisionDoor, r: DecisionResult): void {
    if (res.headersSent || res.destroyed) return;
    try {
      const headers: string[] = ['x-request-id', r.requestId, 'cache-control', 'no-store'];
      let status = r.status;
      if (r.allowed) {
        for (const [k, v] of r.upstreamHeaders) headers.push(k, v);
        // Envoy removes these from the upstream request (a client's identity headers, the credentials).
        if (door === 'envoy-http' && r.removeHeaders.length > 0) headers.push('x-envoy-auth-headers-to-remove', r.removeHeaders.join(','));
        for (const [k, v] of r.responseHeaders) headers.push(k, v);
        res.writeHead(200, headers).end();
        return;
      }
      for (const [k, v] of r.responseHeaders) headers.push(k, v);
      // The gateway's own answer (a CORS preflight) is written as is, on every door.
      if (r.code === undefined) {
        res.writeHead(status, headers).end();
        return;
      }
      if (door === 'nginx') {
        headers.push(NGINX_STATUS_HEADER, String(r.status), NGINX_CODE_HEADER, r.code ?? '');
        if (status !== 401) status = 403;
      }
      headers.push('content-type', PROBLEM_CONTENT_TYPE, 'content-length', String(Buffer.byteLength(r.body)));
      res.writeHead(status, headers).end(r.body);
    } catch (err) {
      this.#fault(res, err);
    }
  }

  #fault(res: ServerResponse, err: unknown): void {
    try {
      faultContained(this.#logger, 'decision', err);
      if (res.headersSent) return void res.destroy();
      const body = problemBody(deny('GATEWAY_ERROR'), newRequestId());
      res.writeHead(500, { 'content-type': PROBLEM_CONTENT_TYPE, 'content-length': Buffer.byteLength(body) }).end(body);
    } catch {
      res.destroy();
    }
  }
}

const MISSING_FORWARDED = deny('BAD_REQUEST', 'Forward auth needs the original request in X-Forwarded-Method, X-Forwarded-Host and X-Forwarded-Uri.');
