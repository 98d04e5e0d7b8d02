// `portcullis serve`: start the proxy and the admin listener, then live until SIGTERM/SIGINT
// (drain, exit 0). SIGHUP reloads the policy and the TLS files through the same path as a file change.

import { type App, startApp } from '../app.js';
import { hashApiKey } from '../authn/api-key.js';
import { displayUrl } from '../config/address.js';
import { checkAdminToken } from '../config/admin-token.js';
import { DEFAULTS, resolveServeConfig } from '../config/serve-config.js';
import type { Plan } from '../core/plan.js';
import { faultContained } from '../observability/faults.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { formatDiagnostic, PolicyError } from '../policy/diagnostics.js';
import { type CliIo, EXIT, parseFlags, UsageError } from './command.js';

export const usage = `Usage: portcullis serve [--policy PATH] [--listen HOST:PORT] [--admin HOST:PORT] [--decisions HOST:PORT] [--decisions-grpc HOST:PORT] [--demo] [--h2c] [--drain 30s]
                        [--access-log] [--access-log-sample R]
                        [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE] [--tls-client-auth MODE]]
                        [--admin-tls-cert FILE --admin-tls-key FILE]

Runs the proxy. The policy is watched and reloaded on change and on SIGHUP; SIGTERM or SIGINT
stops accepting, drains in-flight requests (up to --drain) and exits 0.

Options:
  --policy PATH        policy file or directory   (env PORTCULLIS_POLICY, default ${DEFAULTS.policy})
  --listen HOST:PORT   proxy listener, or "off"   (env PORTCULLIS_LISTEN, default ${DEFAULTS.listen})
  --admin HOST:PORT    admin listener, or "off"   (env PORTCULLIS_ADMIN,  default ${DEFAULTS.admin})
  --decisions HOST:PORT  HTTP decision listener for Envoy ext_authz (/envoy), forward auth
                       (/forward-auth) and nginx auth_request (/nginx) (env PORTCULLIS_DECISIONS, default none)
  --decisions-grpc HOST:PORT  Envoy ext_authz gRPC decision listener (env PORTCULLIS_DECISIONS_GRPC, default none)
  --drain DURATION     longest wait for in-flight requests on shutdown (default ${DEFAULTS.drain})
  --h2c                also serve HTTP/2 with prior knowledge (h2c, gRPC) on the proxy listener
                       (env PORTCULLIS_H2C=1)
  --demo               also start a demo echo upstream and point the policy's upstreams at it
  --access-log         one log line per request on stdout (env PORTCULLIS_ACCESS_LOG=1)
  --access-log-sample R  log this share of requests, 0 < R <= 1 (env PORTCULLIS_ACCESS_LOG_SAMPLE, default 1)
  --tls-cert FILE      serve the proxy over TLS with this PEM certificate (chain) (env PORTCULLIS_TLS_CERT)
  --tls-key FILE       and this PEM private key (env PORTCULLIS_TLS_KEY); both are reloaded when they change
  --tls-client-ca FILE CA bundle client certificates must chain to (env PORTCULLIS_TLS_CLIENT_CA)
  --tls-client-auth MODE  none | optional | require (env PORTCULLIS_TLS_CLIENT_AUTH; default optional
                       with --tls-client-ca, else none); routes read certificates with authenticate: [mtls]
  --admin-tls-cert FILE  serve the admin listener over TLS (env PORTCULLIS_ADMIN_TLS_CERT)
  --admin-tls-key FILE   its private key (env PORTCULLIS_ADMIN_TLS_KEY)
  -h, --help

Environment: PORTCULLIS_ADMIN_TOKEN enables /admin/* (Bearer token); on an admin address other
than loopback it must be at least 32 random bytes (e.g. openssl rand -hex 32) or serve does not
start. PORTCULLIS_NGINX_URI_HEADER and PORTCULLIS_NGINX_METHOD_HEADER rename the headers /nginx
reads the original request from (default X-Original-URI, X-Original-Method). LOG_LEVEL (default info).
`;

/** A concrete path a route pattern matches, for the demo's curl lines. */
function samplePath(pattern: string): string {
  return pattern
    .split('/')
    .map((s) => (s === '**' ? 'hello' : s === '*' ? 'demo' : s.replace(/\{[^}]+\}/g, 'acme')))
    .join('/');
}

/**
 * The throwaway keys the default policy documents in its comments (public on purpose). The policy
 * holds only their digests, so the banner offers one only when the running policy still has it.
 */
const DEMO_KEYS = ['pcs_demo_acme_throwaway'];

function demoKeyOf(plan: Plan): string | undefined {
  const digests = new Set((plan.document.authentication?.apiKeys?.keys ?? []).map((k) => k.hash));
  return DEMO_KEYS.find((key) => digests.has(hashApiKey(key)));
}

function demoBanner(app: App, plan: Plan): string {
  const base = displayUrl(app.proxyUrl).replace(/\/$/, '');
  if (app.proxyUrl === '') return decisionsBanner(app, plan, []);
  const gettable = plan.routes.filter((r) => !r.methods || r.methods.has('GET'));
  const open = gettable.filter((r) => r.public).slice(0, 2);
  const closed = gettable.find((r) => !r.public);
  const tries: [string, string][] = open.map((r) => [`curl -i ${base}${samplePath(r.matcher.pattern)}`, `route "${r.name}": public, 200 from the echo upstream`]);
  if (closed) {
    const url = `${base}${samplePath(closed.matcher.pattern)}`;
    tries.push([`curl -i ${url}`, `route "${closed.name}": needs credentials, 401 AUTH_MISSING`]);
    const key = demoKeyOf(plan);
    const header = plan.authn?.apiKey?.header ?? 'x-api-key';
    if (key !== undefined) tries.push([`curl -i -H '${header}: ${key}' ${url}`, 'with the demo API key: 200, x-auth-* set by the gateway']);
  }
  if (app.adminUrl) tries.push([`curl -s ${displayUrl(app.adminUrl)}/metrics | grep portcullis_requests_total`, 'admin listener: metrics']);
  const width = Math.max(...tries.map(([cmd]) => cmd.length));
  const lines = [`Portcullis demo: proxy on ${base}, answering from a built-in echo upstream. Try:`, ...tries.map(([cmd, note]) => `  ${cmd.padEnd(width)}  # ${note}`)];
  return decisionsBanner(app, plan, lines);
}

/** How to ask the decision listener, when there is one: forward auth is the simplest to try with curl. */
function decisionsBanner(app: App, plan: Plan, lines: string[]): string {
  if (app.decisionsUrl !== undefined) {
    const base = displayUrl(app.decisionsUrl);
    const route = plan.routes.find((r) => r.public && (!r.methods || r.methods.has('GET')));
    const path = route === undefined ? '/' : samplePath(route.matcher.pattern);
    const trusted = plan.ipRules.trusted.trusts('127.0.0.1');
    lines.push(
      `Decision listener on ${base} (/envoy, /forward-auth, /nginx). Ask it as Traefik or Caddy would:`,
      `  curl -i -H 'X-Forwarded-Method: GET' -H 'X-Forwarded-Host: demo' -H 'X-Forwarded-Uri: ${path}' ${base}/forward-auth`,
      trusted
        ? '  # 200 allows (identity headers in the answer); a denial answers its status and problem+json'
        : '  # 403 IP_DENIED: it answers only trustedProxies; add "trustedProxies: [127.0.0.1/32]" to the policy to get decisions',
    );
  }
  if (app.decisionsGrpcAddress !== undefined) lines.push(`Envoy ext_authz gRPC decisions on ${app.decisionsGrpcAddress} (envoy.service.auth.v3.Authorization/Check).`);
  lines.push('Stop with Ctrl-C.');
  return `${lines.join('\n')}\n`;
}

function flushed(logger: Logger): Promise<void> {
  return new Promise((resolve) => logger.flush(() => resolve()));
}

export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseFlags(argv, {
    policy: { type: 'string' },
    listen: { type: 'string' },
    admin: { type: 'string' },
    drain: { type: 'string' },
    demo: { type: 'boolean' },
    h2c: { type: 'boolean' },
    decisions: { type: 'string' },
    'decisions-grpc': { type: 'string' },
    'access-log': { type: 'boolean' },
    'access-log-sample': { type: 'string' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    'tls-client-ca': { type: 'string' },
    'tls-client-auth': { type: 'string' },
    'admin-tls-cert': { type: 'string' },
    'admin-tls-key': { type: 'string' },
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  let config: ReturnType<typeof resolveServeConfig>;
  let logger: Logger;
  try {
    config = resolveServeConfig(values, io.env);
    logger = createLogger(io.env.LOG_LEVEL === undefined ? {} : { level: io.env.LOG_LEVEL });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }

  // Logged before "portcullis listening", on the same stream. Why the flag: the first line of src/main.ts.
  if (!process.execArgv.includes('--no-memory-reducer')) {
    logger.info(
      'node runs without --no-memory-reducer: after an idle spell V8 shrinks the heap and traffic that follows costs more CPU per request (the portcullis executable, npm start and the Docker image pass the flag)',
    );
  }
  // Before anything starts: a weak token off loopback is refused without touching the policy or Redis.
  const tokenCheck = config.admin ? checkAdminToken(config.admin.host, config.admin.port, config.adminToken) : undefined;
  if (tokenCheck && 'refuse' in tokenCheck) {
    io.stderr(`portcullis serve: ${tokenCheck.refuse}\n`);
    await flushed(logger);
    return EXIT.failed;
  }
  let app: App;
  try {
    app = await startApp({ ...config, logger, watch: true });
  } catch (err) {
    if (err instanceof PolicyError) {
      for (const d of err.diagnostics) io.stderr(`${formatDiagnostic(d)}\n`);
      io.stderr(`portcullis serve: the policy at ${config.policyPath} is invalid; nothing was started\n`);
    } else {
      io.stderr(`portcullis serve: cannot start: ${(err as Error).message}\n`);
    }
    await flushed(logger);
    return EXIT.failed;
  }
  if (config.demo) io.stdout(demoBanner(app, app.policy.plan));
  // The last line of containment: a promise some code forgot to await must not end a gateway that
  // serves everyone else (Node's default exits). The request concerned, if any, ends on its own timeouts.
  process.on('unhandledRejection', (err: unknown) => faultContained(logger, 'unhandled_rejection', err));

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        // A second signal while draining: the operator wants out now.
        logger.warn({ signal }, 'second signal while draining; exiting now');
        void flushed(logger).then(() => resolve(EXIT.failed));
        return;
      }
      stopping = true;
      logger.info({ signal, drainMs: config.drainMs }, 'shutting down');
      app
        .shutdown()
        .then(() => {
          logger.info('stopped');
          return flushed(logger);
        })
        .then(() => resolve(EXIT.ok))
        .catch((err: unknown) => {
          logger.error({ err }, 'shutdown failed');
          void flushed(logger).then(() => resolve(EXIT.failed));
        });
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    process.on('SIGHUP', () => {
      logger.info('SIGHUP: reloading the policy and the TLS certificates');
      void app.policy.reload('signal');
      app.reloadTls();
    });
  });
}
