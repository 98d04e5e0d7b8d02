// The admin listener (default 127.0.0.1:9090), separate from the proxy so operators' endpoints are
// never reachable through a route. `/metrics`, `/healthz`, `/readyz` (and registered endpoints
// outside /admin/, such as the identity JWKS) are open: scrapers and kubelets carry no credentials.
// Everything under `/admin/` needs the bearer token.
//
// Lifecycle, as the composition root (src/app.ts) uses it:
//   const admin = new AdminServer({ host, port, token: env.PORTCULLIS_ADMIN_TOKEN, logger, policy });
//   await admin.listen();            // admin.url is then set
//   admin.route('GET', '/admin/breakers', handler);   // modules of admin/ add endpoints (any time)
//   admin.openRoute('/.well-known/jwks.json', h);     // outside /admin/: open
//   admin.setDraining();             // on SIGTERM: /readyz turns 503 so traffic moves away
//   await admin.close();
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import { checkAdminToken } from '../config/admin-token.js';
import type { TlsFiles } from '../config/tls-files.js';
import type { PlanManager } from '../engine/compile.js';
import { registry, tlsHandshakeFailuresTotal } from '../observability/metrics.js';
import { policyRoutes } from './policy-routes.js';
import { ADMIN_PROBLEMS, adminCodeFor, sendJson, sendProblem } from './problem.js';
import { type AdminHandler, type AdminMethod, type AdminResponse, AdminRoutes } from './routes.js';

export type { AdminHandler, AdminMethod } from './routes.js';

/** Admin requests are small JSON documents; anything bigger is refused before it is buffered. */
export const MAX_ADMIN_BODY_BYTES = 16 * 1024;

export interface AdminServerOptions {
  readonly host: string;
  readonly port: number;
  /** PORTCULLIS_ADMIN_TOKEN; absent or empty: /admin/* answers 403 (disabled). */
  readonly token?: string | undefined;
  readonly logger: Logger;
  /** May be attached later (setPolicy); until then /readyz is 503. */
  readonly policy?: PlanManager | undefined;
  /** Serve HTTPS with this certificate (reloaded when its files change); absent: plain HTTP. */
  readonly tls?: TlsFiles | undefined;
}

/**
 * What one readiness check found: undefined when all is well; `ready: false` takes the instance out
 * of rotation (503); `ready: true` is a degradation /readyz reports while staying 200.
 */
export type Readiness = { readonly ready: boolean; readonly reason: string } | undefined;
export type ReadinessCheck = () => Promise<Readiness>;

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

export class AdminServer {
  readonly #options: AdminServerOptions;
  readonly #tokenDigest: Buffer | undefined;
  readonly #routes = new AdminRoutes();
  readonly #server: Server;
  #policy: PlanManager | undefined;
  #draining = false;
  #readiness: ReadinessCheck[] = [];
  #url: string | undefined;

  /** Throws when the token cannot guard the address (see token.ts): nothing may listen then. */
  constructor(options: AdminServerOptions) {
    const check = checkAdminToken(options.host, options.port, options.token);
    if (check && 'refuse' in check) throw new Error(check.refuse);
    if (check) options.logger.warn(check.warn);
    this.#options = options;
    this.#tokenDigest = options.token ? digest(options.token) : undefined;
    this.#policy = options.policy;
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      this.#handle(req, res).catch((err: unknown) => {
        options.logger.error({ err }, 'admin request failed');
        if (!res.headersSent) sendProblem(res, 'INTERNAL_ERROR', 'the admin request failed; see the logs');
        else res.destroy();
      });
    };
    const timeouts = { requestTimeout: 30_000, headersTimeout: 10_000 };
    const tls = options.tls;
    if (tls === undefined) this.#server = createServer(timeouts, handler);
    else {
      const https = createHttpsServer({ ...timeouts, ...tls.current, handshakeTimeout: 10_000 }, handler);
      tls.onChange((m) => https.setSecureContext(m));
      https.on('tlsClientError', (_err: Error, socket: Socket) => {
        tlsHandshakeFailuresTotal.labels('admin').inc();
        socket.destroy();
      });
      this.#server = https;
    }
    this.#server.keepAliveTimeout = 5_000;
    policyRoutes(
      (m, p, h) => this.route(m, p, h),
      () => this.#policy,
    );
  }

  /**
   * Registers an endpoint (patterns like `/admin/tenants/:id/usage`). Everything under /admin/ needs
   * the bearer token; a pattern outside it (e.g. `/.well-known/jwks.json`) is open to anyone who
   * can reach the admin listener, so register only public data there.
   */
  route(method: AdminMethod, pattern: string, handler: AdminHandler): this {
    this.#routes.add(method, pattern, handler);
    return this;
  }

  /** An open GET endpoint outside /admin/ (public data only, e.g. the identity JWKS). */
  openRoute(pattern: string, handler: AdminHandler): this {
    if (pattern === '/admin' || pattern.startsWith('/admin/')) throw new Error(`${pattern} is under /admin/, which needs the token: use route()`);
    return this.route('GET', pattern, handler);
  }

  setPolicy(policy: PlanManager): void {
    this.#policy = policy;
  }

  /** A condition /readyz also reports (e.g. the limits store): run on every probe. */
  addReadinessCheck(check: ReadinessCheck): void {
    this.#readiness.push(check);
  }

  /** From now on /readyz answers 503: the process is shutting down. */
  setDraining(): void {
    this.#draining = true;
  }

  get url(): string | undefined {
    return this.#url;
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.#options.port, this.#options.host, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    const { address, port } = this.#server.address() as AddressInfo;
    const host = address.includes(':') ? `[${address}]` : address;
    this.#url = `${this.#options.tls === undefined ? 'http' : 'https'}://${host}:${port}`;
    this.#options.logger.info({ url: this.#url, adminApi: this.#tokenDigest ? 'enabled' : 'disabled' }, 'admin listener up');
    return this.#url;
  }

  async close(): Promise<void> {
    if (!this.#server.listening) return;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeIdleConnections();
    await closed;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    const method = req.method ?? 'GET';
    const path = url.pathname;
    if (path === '/healthz') return sendJson(res, 200, { status: 'ok' });
    if (path === '/readyz') return this.#ready(res);
    if (path === '/metrics') {
      const text = await registry.metrics();
      res.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' });
      res.end(text);
      return;
    }
    // Only /admin/ needs the token; the few endpoints outside it are public by design (JWKS).
    if ((path === '/admin' || path.startsWith('/admin/')) && !this.#authorized(req, res)) return;
    const found = this.#routes.lookup(method, path);
    if (found.kind === 'none') return sendProblem(res, 'NOT_FOUND', `no admin endpoint ${path}`);
    if (found.kind === 'method') {
      return sendProblem(res, 'METHOD_NOT_ALLOWED', `${method} is not allowed on ${path}`, {}, { allow: found.allow.join(', ') });
    }
    const body = await readJson(req);
    if ('refused' in body) {
      const { code, detail } = body.refused;
      // A refused body may be partly unread: that connection cannot carry another request.
      const close: Record<string, string> = code === 'INVALID_JSON' ? {} : { connection: 'close' };
      return sendProblem(res, code, detail, code === 'BODY_TOO_LARGE' ? { maxBytes: MAX_ADMIN_BODY_BYTES } : {}, close);
    }
    const out = await found.handler({ method, path, params: found.params, query: url.searchParams, headers: req.headers, body: body.value });
    respond(res, out);
  }

  async #ready(res: ServerResponse): Promise<void> {
    if (this.#draining) return sendJson(res, 503, { status: 'draining' });
    const plan = this.#policy?.plan;
    if (!plan) return sendJson(res, 503, { status: 'no policy loaded' });
    const found = await Promise.all(
      this.#readiness.map((check) => check().catch((err: unknown): Readiness => ({ ready: false, reason: `readiness check failed: ${err instanceof Error ? err.message : String(err)}` }))),
    );
    const problems = found.filter((r) => r !== undefined);
    if (problems.length === 0) return sendJson(res, 200, { status: 'ready', policy: plan.hash });
    const ready = problems.every((r) => r.ready);
    sendJson(res, ready ? 200 : 503, { status: ready ? 'degraded' : 'not ready', policy: plan.hash, reasons: problems.map((r) => r.reason) });
  }

  #authorized(req: IncomingMessage, res: ServerResponse): boolean {
    if (!this.#tokenDigest) {
      sendProblem(res, 'ADMIN_DISABLED', 'the admin API is disabled until PORTCULLIS_ADMIN_TOKEN is set');
      return false;
    }
    const header = req.headers.authorization ?? '';
    const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
    // Compare fixed-length digests so neither the token's length nor its prefix leaks through timing.
    if (!m || !timingSafeEqual(digest(m[1]!), this.#tokenDigest)) {
      sendProblem(res, 'ADMIN_UNAUTHORIZED', 'a valid admin bearer token is required', {}, { 'www-authenticate': 'Bearer realm="portcullis-admin"' });
      return false;
    }
    return true;
  }
}

type BodyResult = { readonly value: unknown } | { readonly refused: { readonly code: 'BODY_TOO_LARGE' | 'UNSUPPORTED_MEDIA_TYPE' | 'INVALID_JSON'; readonly detail: string } };

/** `application/json` or a `+json` type, any parameters (charset). */
const JSON_TYPE = /^application\/(?:[\w.-]+\+)?json\s*(?:;|$)/i;

/** The JSON body (value undefined when there is none), or why it is refused: checked before it is buffered. */
async function readJson(req: IncomingMessage): Promise<BodyResult> {
  const length = req.headers['content-length'];
  const hasBody = (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
  if (!hasBody) return { value: undefined };
  const type = req.headers['content-type'];
  if (type === undefined || !JSON_TYPE.test(type)) {
    return { refused: { code: 'UNSUPPORTED_MEDIA_TYPE', detail: `the body must be application/json (got ${type === undefined ? 'no content-type' : JSON.stringify(type)})` } };
  }
  const tooLarge = { refused: { code: 'BODY_TOO_LARGE', detail: `the body is larger than ${MAX_ADMIN_BODY_BYTES} bytes` } } as const;
  if (length !== undefined && Number(length) > MAX_ADMIN_BODY_BYTES) return tooLarge;
  const text = await new Promise<string | undefined>((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      if (size > MAX_ADMIN_BODY_BYTES) return; // refused already; the rest is drained, not kept
      size += chunk.length;
      if (size > MAX_ADMIN_BODY_BYTES) resolve(undefined);
      else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', () => resolve(undefined));
  });
  if (text === undefined) return tooLarge;
  if (text === '') return { value: undefined };
  try {
    return { value: JSON.parse(text) as unknown };
  } catch {
    return { refused: { code: 'INVALID_JSON', detail: 'the body is not valid JSON' } };
  }
}

function respond(res: ServerResponse, out: AdminResponse): void {
  if (out.problem) {
    const p = out.problem;
    const code = p.code ?? adminCodeFor(out.status);
    return sendProblem(res, code, p.detail, p.extra, { ...out.headers }, out.status, p.title ?? ADMIN_PROBLEMS[code].title);
  }
  if (out.body === undefined) {
    res.writeHead(out.status, { ...out.headers });
    res.end();
    return;
  }
  sendJson(res, out.status, out.body, { ...out.headers });
}
