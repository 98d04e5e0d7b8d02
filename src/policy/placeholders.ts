// Stand-ins for unset env: variables in values that `portcullis test` and `explain` never use:
// they decide requests without forwarding them, counting limits or writing audit events. Values
// they do use (JWT secrets and keys, API key hashes, roles, anything else) get none: an unset
// variable there stays an error, so no test can pass on a credential it never checked.
import { generateKeyPairSync } from 'node:crypto';
import type { KeyPath } from './source-map.js';

type Make = (slug: string) => string;

const url: Make = (slug) => `http://unset-${slug}.invalid`;
const redis: Make = (slug) => `redis://unset-${slug}.invalid:6379`;
/** Long enough for every length check a secret gets (HMAC secrets: 32 bytes). */
const secret: Make = (slug) => `unset-${slug}-`.padEnd(48, 'x');
const path: Make = (slug) => `unset-${slug}.ndjson`;
let signingKey: string | undefined;
/** A real key, made once: the identity-token key is parsed as a PEM private key at compile time. */
const privateKey: Make = () => (signingKey ??= generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());

/** `*` matches any one key or list index. */
const UNUSED: readonly (readonly [readonly string[], Make])[] = [
  [['upstreams', '*', 'url'], url],
  [['upstreams', '*', 'targets', '*'], url],
  [['store', 'url'], redis],
  [['store', 'prefix'], (slug) => `unset-${slug}:`],
  [['audit', 'sinks', '*', 'webhook', 'url'], url],
  [['audit', 'sinks', '*', 'webhook', 'secret'], secret],
  [['audit', 'sinks', '*', 'redisStream', 'url'], redis],
  [['audit', 'sinks', '*', 'redisStream', 'key'], (slug) => `unset-${slug}`],
  [['audit', 'sinks', '*', 'file', 'path'], path],
  [['audit', 'spool'], (slug) => `unset-${slug}`],
  [['audit', 'checkpoint', 'key'], secret],
  [['authentication', 'forward', 'jwt', 'key'], privateKey],
];

const matches = (pattern: readonly string[], at: KeyPath): boolean => pattern.length === at.length && pattern.every((p, i) => p === '*' || p === String(at[i]));

/** LoadOptions.unsetEnv for commands that decide requests but never forward, count or audit them. */
export function simulationPlaceholder(at: KeyPath, name: string): string | undefined {
  const slug = name.toLowerCase().replace(/[^a-z0-9]+/g, '-');
  return UNUSED.find(([pattern]) => matches(pattern, at))?.[1](slug);
}
