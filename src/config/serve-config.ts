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
  readonly decisions?: string;
  readonly 'decisions-grpc'?: string;
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
  /** The Envoy ext_authz gRPC listener; null: none. */
  readonly decisionsGrpc: ListenAddress | null;
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
    decisionsGrpc,
  });
}

/** An optional listener: unset, empty or "off" is none. */
function optionalListen(value: string | undefined, what: string): ListenAddress | null {
  return value === undefined || value === '' || value === 'off' ? null : parseListen(value, what);
}
