// `serve` flags + environment → the frozen runtime configuration. Flags win over env, env over
// defaults; every value is checked here so a typo fails at start-up with a clear message.
import { parseDuration } from '../policy/values.js';
import { type ListenAddress, parseListen } from './address.js';

export const DEFAULTS = Object.freeze({ policy: './policies', listen: '0.0.0.0:8080', admin: '127.0.0.1:9090', drain: '30s' });

export interface ServeFlags {
  readonly policy?: string;
  readonly listen?: string;
  readonly admin?: string;
  readonly drain?: string;
  readonly demo?: boolean;
  readonly h2c?: boolean;
  readonly decisions?: string;
  readonly 'decisions-grpc'?: string;
  readonly 'access-log'?: boolean;
  readonly 'access-log-sample'?: string;
  readonly 'tls-cert'?: string;
  readonly 'tls-key'?: string;
  readonly 'tls-client-ca'?: string;
  readonly 'tls-client-auth'?: string;
  readonly 'admin-tls-cert'?: string;
  readonly 'admin-tls-key'?: string;
}

type ClientAuth = 'none' | 'optional' | 'require';

/** A listener's TLS settings: the files (watched and reloaded) and, on the proxy, the client certificate policy. */
export interface ListenerTls {
  readonly cert: string;
  readonly key: string;
  readonly clientCa: string | undefined;
  readonly clientAuth: ClientAuth;
}

export interface ServeConfig {
  readonly policyPath: string;
  /** null: `--listen off` (a pure decision service). */
  readonly listen: ListenAddress | null;
  /** The HTTP decision listener; null: none. */
  readonly decisions: ListenAddress | null;
  /** Header names nginx's auth_request sends the original URI and method in (PORTCULLIS_NGINX_URI_HEADER, _METHOD_HEADER). */
  readonly nginxHeaders: { readonly uri: string | undefined; readonly method: string | undefined };
  /** null: `--admin off`, no admin listener. */
  readonly admin: ListenAddress | null;
  readonly adminToken: string | undefined;
  readonly drainMs: number;
  readonly demo: boolean;
  /** HTTP/2 with prior knowledge (h2c) beside HTTP/1.1 on the cleartext listener. */
  readonly h2c: boolean;
  /** The Envoy ext_authz gRPC listener; null: none. */
  readonly decisionsGrpc: ListenAddress | null;
  /** One log line per request; undefined: off. */
  readonly accessLog: { readonly sample: number } | undefined;
  /** undefined: the proxy listens in cleartext. */
  readonly tls: ListenerTls | undefined;
  /** undefined: the admin listener speaks plain HTTP. */
  readonly adminTls: ListenerTls | undefined;
}

/** --access-log / PORTCULLIS_ACCESS_LOG, and the share of requests it logs. */
function accessLogOf(flags: ServeFlags, env: NodeJS.ProcessEnv): { sample: number } | undefined {
  const on = flags['access-log'] ?? ['1', 'true', 'yes', 'on'].includes((env.PORTCULLIS_ACCESS_LOG ?? '').trim().toLowerCase());
  const raw = flags['access-log-sample'] ?? env.PORTCULLIS_ACCESS_LOG_SAMPLE;
  if (raw === undefined || raw.trim() === '') return on ? { sample: 1 } : undefined;
  const sample = Number(raw);
  if (!/^\s*(0|1)?(\.\d+)?\s*$/.test(raw) || !(sample > 0 && sample <= 1)) throw new Error(`--access-log-sample: expected a share of requests above 0 and at most 1, such as 0.1 (got "${raw}")`);
  // A sample rate alone asks for the log too: there is no other reason to give one.
  return { sample };
}

const CLIENT_AUTH: readonly string[] = ['none', 'optional', 'require'];

/** The --tls-* and --admin-tls-* flags over their environment variables; every inconsistent combination is named. */
function resolveTls(flags: ServeFlags, env: NodeJS.ProcessEnv): { tls: ListenerTls | undefined; adminTls: ListenerTls | undefined } {
  const cert = flags['tls-cert'] ?? (env.PORTCULLIS_TLS_CERT || undefined);
  const key = flags['tls-key'] ?? (env.PORTCULLIS_TLS_KEY || undefined);
  const clientCa = flags['tls-client-ca'] ?? (env.PORTCULLIS_TLS_CLIENT_CA || undefined);
  const auth = flags['tls-client-auth'] ?? (env.PORTCULLIS_TLS_CLIENT_AUTH || undefined);
  if ((cert === undefined) !== (key === undefined)) throw new Error('--tls-cert and --tls-key go together: give both or neither');
  if (auth !== undefined && !CLIENT_AUTH.includes(auth)) throw new Error(`--tls-client-auth: expected none, optional or require (got "${auth}")`);
  if (cert === undefined && (clientCa !== undefined || auth !== undefined)) throw new Error('--tls-client-ca and --tls-client-auth need --tls-cert and --tls-key');
  if (clientCa === undefined && (auth === 'optional' || auth === 'require')) throw new Error(`--tls-client-auth ${auth} needs --tls-client-ca (the CA client certificates must chain to)`);
  const clientAuth = (auth ?? (clientCa === undefined ? 'none' : 'optional')) as ClientAuth;
  const tls = cert === undefined ? undefined : { cert, key: key!, clientCa: clientAuth === 'none' ? undefined : clientCa, clientAuth };
  const adminCert = flags['admin-tls-cert'] ?? (env.PORTCULLIS_ADMIN_TLS_CERT || undefined);
  const adminKey = flags['admin-tls-key'] ?? (env.PORTCULLIS_ADMIN_TLS_KEY || undefined);
  if ((adminCert === undefined) !== (adminKey === undefined)) throw new Error('--admin-tls-cert and --admin-tls-key go together: give both or neither');
  const adminTls = adminCert === undefined ? undefined : { cert: adminCert, key: adminKey!, clientCa: undefined, clientAuth: 'none' as const };
  return { tls, adminTls };
}

export function resolveServeConfig(flags: ServeFlags, env: NodeJS.ProcessEnv): ServeConfig {
  const admin = flags.admin ?? env.PORTCULLIS_ADMIN ?? DEFAULTS.admin;
  const drain = flags.drain ?? DEFAULTS.drain;
  let drainMs: number;
  try {
    drainMs = parseDuration(drain);
  } catch {
    throw new Error(`--drain: expected a duration such as 30s or 500ms (got "${drain}")`);
  }
  const listen = flags.listen ?? env.PORTCULLIS_LISTEN ?? DEFAULTS.listen;
  const decisions = flags.decisions ?? env.PORTCULLIS_DECISIONS;
  const decisionsGrpc = optionalListen(flags['decisions-grpc'] ?? env.PORTCULLIS_DECISIONS_GRPC, '--decisions-grpc');
  if (listen === 'off' && decisions === undefined && decisionsGrpc === null) {
    throw new Error('--listen off: nothing would serve requests; give --decisions HOST:PORT or --decisions-grpc HOST:PORT for a pure decision service');
  }
  return Object.freeze({
    policyPath: flags.policy ?? env.PORTCULLIS_POLICY ?? DEFAULTS.policy,
    listen: listen === 'off' ? null : parseListen(listen, '--listen'),
    decisions: decisions === undefined || decisions === '' ? null : parseListen(decisions, '--decisions'),
    nginxHeaders: { uri: env.PORTCULLIS_NGINX_URI_HEADER || undefined, method: env.PORTCULLIS_NGINX_METHOD_HEADER || undefined },
    admin: admin === 'off' ? null : parseListen(admin, '--admin'),
    adminToken: env.PORTCULLIS_ADMIN_TOKEN || undefined,
    drainMs,
    demo: flags.demo ?? false,
    h2c: flags.h2c ?? (env.PORTCULLIS_H2C === '1' || env.PORTCULLIS_H2C === 'true'),
    decisionsGrpc,
    accessLog: accessLogOf(flags, env),
    ...resolveTls(flags, env),
  });
}

/** An optional listener: unset, empty or "off" is none. */
function optionalListen(value: string | undefined, what: string): ListenAddress | null {
  return value === undefined || value === '' || value === 'off' ? null : parseListen(value, what);
}
