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
}

export interface ServeConfig {
  readonly policyPath: string;
  readonly listen: ListenAddress;
  /** null: `--admin off`, no admin listener. */
  readonly admin: ListenAddress | null;
  readonly adminToken: string | undefined;
  readonly drainMs: number;
  readonly demo: boolean;
  /** HTTP/2 with prior knowledge (h2c) beside HTTP/1.1 on the cleartext listener. */
  readonly h2c: boolean;
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
  return Object.freeze({
    policyPath: flags.policy ?? env.PORTCULLIS_POLICY ?? DEFAULTS.policy,
    listen: parseListen(flags.listen ?? env.PORTCULLIS_LISTEN ?? DEFAULTS.listen, '--listen'),
    admin: admin === 'off' ? null : parseListen(admin, '--admin'),
    adminToken: env.PORTCULLIS_ADMIN_TOKEN || undefined,
    drainMs,
    demo: flags.demo ?? false,
    h2c: flags.h2c ?? (env.PORTCULLIS_H2C === '1' || env.PORTCULLIS_H2C === 'true'),
  });
}
