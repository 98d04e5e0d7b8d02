// `portcullis keys`: create a static API key (printed once, with the policy entry holding only its
// hash) and hash an existing key. The admin-API variants (revoke, list, --admin) come with dynamic
// keys (issue 6).
import { randomBytes } from 'node:crypto';
import { stringify } from 'yaml';
import { hashApiKey } from '../authn/api-key.js';
import { EXIT, parseFlags, UsageError, type CliIo } from './command.js';

export const KEY_PREFIX = 'pcs_';
const ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const ROLE = /^[\x21-\x2b\x2d-\x7e]+$/;

export const usage = `portcullis keys — create and hash API keys

Usage:
  portcullis keys create --tenant T --roles R,R [--id ID] [--expires DATE]
      Prints a new key ONCE (store it now; Portcullis keeps only its hash) and the policy entry
      to paste under authentication.apiKeys.keys.
  portcullis keys hash KEY
      Prints sha256:<hex> of KEY, the form policies store.
  portcullis keys revoke ID --admin URL | list --admin URL [--tenant T]
      Not available yet (issue 6: dynamic keys through the admin API).
`;

/** 32 random bytes, base64url: 256 bits of entropy behind a recognisable prefix. */
export function generateApiKey(): string {
  return `${KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
}

function create(argv: readonly string[], io: CliIo): number {
  const { values, positionals } = parseFlags(argv, {
    tenant: { type: 'string' },
    roles: { type: 'string' },
    id: { type: 'string' },
    expires: { type: 'string' },
    admin: { type: 'string' },
  });
  if (values.admin !== undefined) {
    io.stderr('portcullis keys create --admin: not available yet (issue 6)\n');
    return EXIT.usage;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  if (values.tenant === undefined || !/^[\x21-\x7e]+$/.test(values.tenant)) throw new UsageError('--tenant T is required (visible ASCII)');
  const roles = (values.roles ?? '').split(',').map((r) => r.trim()).filter((r) => r !== '');
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

function hash(argv: readonly string[], io: CliIo): number {
  const { positionals } = parseFlags(argv, {});
  if (positionals.length !== 1 || positionals[0] === '') throw new UsageError('portcullis keys hash KEY');
  io.stdout(`${hashApiKey(positionals[0]!)}\n`);
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
    case 'list':
      io.stderr(`portcullis keys ${sub}: not available yet (issue 6: dynamic keys through the admin API)\n`);
      return EXIT.usage;
    default:
      throw new UsageError(sub === undefined ? 'a subcommand is required' : `unknown subcommand "${sub}"`);
  }
}
