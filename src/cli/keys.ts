// `portcullis keys`: create a static API key (printed once, with the policy entry holding only its
// hash) and hash an existing key; with --admin URL, create dynamic keys (with their own limits),
// rotate one with a grace period, list every key and revoke any key (a static one stays in the policy, refused) through the admin API, authenticated with
// PORTCULLIS_ADMIN_TOKEN.
import { randomBytes } from 'node:crypto';
import { fetch } from 'undici';
import { stringify } from 'yaml';
import { generateApiKey, hashApiKey } from '../authn/api-key.js';
import { type CliIo, EXIT, parseFlags, UsageError } from './command.js';

const ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const ROLE = /^[\x21-\x2b\x2d-\x7e]+$/;

export const usage = `portcullis keys — create, hash, list and revoke API keys

Usage:
  portcullis keys create --tenant T --roles R,R [--id ID] [--expires DATE]
      Prints a new key ONCE (store it now; Portcullis keeps only its hash) and the policy entry
      to paste under authentication.apiKeys.keys.
  portcullis keys hash [KEY | -]
      Prints sha256:<hex> of KEY, the form policies store. With "-", or no KEY and standard input
      not a terminal, the key is read from standard input (one trailing newline dropped), so it
      stays out of shell history and the process list:  printf %s "$KEY" | portcullis keys hash
  portcullis keys create --admin URL --tenant T [--roles R,R] [--permissions P,P] [--id ID] [--expires DATE] [--subject S]
                         [--rate R] [--burst N] [--quota Q]
      A dynamic key; --rate, --burst and --quota are its own limits (as a static key's limits).
  portcullis keys list --admin URL [--tenant T] [--json]
      Every key the instance knows: the policy's static keys (SOURCE policy) and the dynamic
      ones (SOURCE dynamic), with STATUS active, expired, disabled or revoked, expiry, last use
      (to the minute) and limits. Never a hash.
  portcullis keys rotate ID --admin URL [--grace 24h]
      A new dynamic key (printed ONCE) for the same identity, roles and limits; the old key keeps
      working until the grace ends, then it is refused as expired.
  portcullis keys revoke ID --admin URL
      A dynamic key is deleted. A static key stays in the policy but is refused from now on: the
      revocation is kept in the store, so it outlasts reloads and restarts.
  With --admin, the token comes from PORTCULLIS_ADMIN_TOKEN; changes reach every replica sharing
  the store within about a second (the replica you called at once).
`;

const splitList = (v: string | undefined): string[] =>
  (v ?? '')
    .split(',')
    .map((r) => r.trim())
    .filter((r) => r !== '');

/** An admin API answer as the CLI reads it: fields are checked where they are printed. */
// biome-ignore lint/suspicious/noExplicitAny: the admin API's JSON, read field by field where it is printed
type AdminJson = any;

async function adminCall(io: CliIo, base: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: AdminJson } | number> {
  const token = io.env.PORTCULLIS_ADMIN_TOKEN;
  if (!token) {
    io.stderr('PORTCULLIS_ADMIN_TOKEN is not set\n');
    return EXIT.usage;
  }
  let res: Awaited<ReturnType<typeof fetch>>;
  try {
    res = await fetch(new URL(path, base.endsWith('/') ? base : `${base}/`).toString(), {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  } catch (err) {
    io.stderr(`cannot reach ${base}: ${(err as Error).message}\n`);
    return EXIT.failed;
  }
  const text = await res.text();
  let json: AdminJson;
  try {
    json = text === '' ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (res.status >= 400) {
    io.stderr(`${method} ${path}: ${res.status} ${json?.detail ?? json?.title ?? text}\n`);
    return EXIT.failed;
  }
  return { status: res.status, json };
}

async function createRemote(values: Record<string, string | undefined>, io: CliIo): Promise<number> {
  if (values.tenant === undefined) throw new UsageError('--tenant T is required');
  const body: Record<string, unknown> = { tenant: values.tenant, roles: splitList(values.roles), permissions: splitList(values.permissions) };
  if (values.id !== undefined) body.id = values.id;
  if (values.expires !== undefined) body.expires = values.expires;
  if (values.subject !== undefined) body.subject = values.subject;
  if (values.rate !== undefined || values.quota !== undefined || values.burst !== undefined) {
    const burst = values.burst === undefined ? undefined : Number(values.burst);
    if (burst !== undefined && !(Number.isInteger(burst) && burst > 0)) throw new UsageError(`--burst "${values.burst}" is not a positive whole number`);
    body.limits = { rate: values.rate, burst, quota: values.quota };
  }
  const r = await adminCall(io, values.admin!, 'POST', 'admin/keys', body);
  if (typeof r === 'number') return r;
  io.stdout(`API key (shown once, store it now): ${r.json.key}\nid: ${r.json.id}\ntenant: ${r.json.tenant}\n`);
  return EXIT.ok;
}

async function list(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseFlags(argv, { admin: { type: 'string' }, tenant: { type: 'string' }, json: { type: 'boolean' } });
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  if (values.admin === undefined) throw new UsageError('portcullis keys list --admin URL [--tenant T]');
  const r = await adminCall(io, values.admin, 'GET', `admin/keys${values.tenant ? `?tenant=${encodeURIComponent(values.tenant)}` : ''}`);
  if (typeof r === 'number') return r;
  if (values.json) {
    io.stdout(`${JSON.stringify(r.json.keys, null, 2)}\n`);
    return EXIT.ok;
  }
  io.stdout('ID\tTENANT\tROLES\tSOURCE\tSTATUS\tCREATED\tEXPIRES\tLAST_USED\tLIMITS\n');
  type Listed = {
    id: string;
    tenant: string | null;
    roles: string[];
    source: string;
    status: string;
    created: string | null;
    expires: string | null;
    lastUsed?: string | null;
    limits?: { rate?: string; burst?: number; quota?: string } | null;
  };
  for (const k of r.json.keys as Listed[]) {
    const l = k.limits;
    const limits = l ? [l.rate && `rate=${l.rate}`, l.burst && `burst=${l.burst}`, l.quota && `quota=${l.quota}`].filter(Boolean).join(',') : '';
    io.stdout(`${k.id}\t${k.tenant ?? '-'}\t${k.roles.join(',') || '-'}\t${k.source}\t${k.status}\t${k.created ?? '-'}\t${k.expires ?? '-'}\t${k.lastUsed ?? '-'}\t${limits || '-'}\n`);
  }
  return EXIT.ok;
}

async function revoke(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseFlags(argv, { admin: { type: 'string' } });
  if (positionals.length !== 1 || values.admin === undefined) throw new UsageError('portcullis keys revoke ID --admin URL');
  const r = await adminCall(io, values.admin, 'DELETE', `admin/keys/${encodeURIComponent(positionals[0]!)}`);
  if (typeof r === 'number') return r;
  if (r.json?.source === 'policy') {
    io.stdout(`revoked static key ${positionals[0]} (since ${r.json.revoked}): refused from now on by every replica sharing the store\n`);
    io.stdout(`note: the policy still lists ${positionals[0]}; remove it from authentication.apiKeys.keys to retire it for good\n`);
  } else {
    io.stdout(`revoked ${positionals[0]}\n`);
  }
  return EXIT.ok;
}

async function rotate(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseFlags(argv, { admin: { type: 'string' }, grace: { type: 'string' } });
  if (positionals.length !== 1 || values.admin === undefined) throw new UsageError('portcullis keys rotate ID --admin URL [--grace 24h]');
  if (values.grace !== undefined && !/^\d+(ms|s|m|h|d)$/.test(values.grace)) throw new UsageError(`--grace "${values.grace}" is not a duration (e.g. 30m, 24h, 7d)`);
  const r = await adminCall(io, values.admin, 'POST', `admin/keys/${encodeURIComponent(positionals[0]!)}/rotate`, values.grace === undefined ? {} : { grace: values.grace });
  if (typeof r === 'number') return r;
  io.stdout(`API key (shown once, store it now): ${r.json.key}\nid: ${r.json.id}\ntenant: ${r.json.tenant}\n`);
  io.stdout(`${r.json.previous.id} keeps working until ${r.json.previous.expires}\n`);
  return EXIT.ok;
}

async function create(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseFlags(argv, {
    tenant: { type: 'string' },
    roles: { type: 'string' },
    id: { type: 'string' },
    expires: { type: 'string' },
    admin: { type: 'string' },
    permissions: { type: 'string' },
    subject: { type: 'string' },
    rate: { type: 'string' },
    burst: { type: 'string' },
    quota: { type: 'string' },
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  if (values.admin !== undefined) return createRemote(values, io);
  if (values.rate !== undefined || values.burst !== undefined || values.quota !== undefined)
    throw new UsageError('--rate, --burst and --quota need --admin (a static key takes limits in the policy entry)');
  if (values.tenant === undefined || !/^[\x21-\x7e]+$/.test(values.tenant)) throw new UsageError('--tenant T is required (visible ASCII)');
  const roles = (values.roles ?? '')
    .split(',')
    .map((r) => r.trim())
    .filter((r) => r !== '');
  if (roles.length === 0) throw new UsageError('--roles R,R is required');
  for (const r of roles) if (!ROLE.test(r)) throw new UsageError(`"${r}" is not a role name`);
  const id = values.id ?? `${values.tenant.replace(/[^A-Za-z0-9_.-]/g, '-')}-${randomBytes(4).toString('hex')}`;
  if (!ID.test(id)) throw new UsageError(`--id "${id}" must be letters, digits, "_", "." or "-"`);
  let expires: string | undefined;
  if (values.expires !== undefined) {
    const ms = Date.parse(values.expires);
    if (!Number.isFinite(ms)) throw new UsageError(`--expires "${values.expires}" is not a date (e.g. 2027-01-01)`);
    if (ms <= Date.now()) throw new UsageError(`--expires "${values.expires}" is in the past`);
    expires = new Date(ms).toISOString();
  }
  const key = generateApiKey();
  const entry: Record<string, unknown> = { id, hash: hashApiKey(key), tenant: values.tenant, roles };
  if (expires !== undefined) entry.expires = expires;
  io.stdout(`API key (shown once, store it now): ${key}\n\n# under authentication.apiKeys.keys:\n${stringify([entry])}`);
  return EXIT.ok;
}

async function hash(argv: readonly string[], io: CliIo): Promise<number> {
  const { positionals } = parseFlags(argv, {});
  if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1]}"`);
  const fromStdin = positionals[0] === '-' || (positionals.length === 0 && io.stdin !== undefined && !io.stdin.isTTY);
  let key = positionals[0];
  if (fromStdin) {
    if (io.stdin === undefined || io.stdin.isTTY) throw new UsageError('"-" reads the key from standard input, which is a terminal here: pipe the key in');
    key = (await io.stdin.read()).replace(/\r?\n$/, '');
  }
  if (key === undefined || key === '') throw new UsageError(fromStdin ? 'standard input held no key' : 'portcullis keys hash KEY (or pipe the key in)');
  io.stdout(`${hashApiKey(key)}\n`);
  return EXIT.ok;
}

export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'create':
      return create(rest, io);
    case 'hash':
      return hash(rest, io);
    case 'revoke':
      return revoke(rest, io);
    case 'list':
      return list(rest, io);
    case 'rotate':
      return rotate(rest, io);
    default:
      throw new UsageError(sub === undefined ? 'a subcommand is required' : `unknown subcommand "${sub}"`);
  }
}
