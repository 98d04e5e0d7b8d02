// Whether PORTCULLIS_ADMIN_TOKEN may guard an admin listener at a given address. Off loopback the
// token is all that stands between the network and key creation, reloads and tenant data, so a
// short, placeholder or patterned token is refused there and the process does not start. On
// loopback only local processes can call, and a short token is allowed with a warning.
import { isIPv4, isIPv6 } from 'node:net';

const MIN_ADMIN_TOKEN_BYTES = 32;

/** Long tell-tale words: found anywhere in the token (letters and digits only, lower case). */
const PLACEHOLDER_FRAGMENTS = ['replaceme', 'changeme', 'placeholder', 'example', 'yourtoken', 'insertyour', 'fillmein'];
/** Short words: a placeholder only as a whole word of the token (random tokens contain them by chance). */
const PLACEHOLDER_WORDS = new Set(['secret', 'password', 'passwd', 'admin', 'token', 'test', 'testing', 'default', 'dummy', 'sample', 'demo', 'insecure', 'todo', 'fixme', 'letmein', 'qwerty']);
const MIN_DISTINCT_CHARACTERS = 8;

/** Why `token` is not fit to guard a listener reachable from the network; undefined when it is. */
export function adminTokenWeakness(token: string): string | undefined {
  const bytes = Buffer.byteLength(token, 'utf8');
  if (bytes < MIN_ADMIN_TOKEN_BYTES) return `it is ${bytes} bytes long; at least ${MIN_ADMIN_TOKEN_BYTES} are required`;
  const letters = token.toLowerCase().replace(/[^a-z0-9]/g, '');
  const fragment = PLACEHOLDER_FRAGMENTS.find((f) => letters.includes(f));
  const word = token
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .find((w) => PLACEHOLDER_WORDS.has(w));
  if (fragment !== undefined || word !== undefined) return `it looks like a placeholder (it contains "${fragment ?? word}")`;
  const distinct = new Set(token).size;
  if (distinct < MIN_DISTINCT_CHARACTERS) return `it uses only ${distinct} different characters`;
  if (repeatsUnit(token)) return 'it repeats a shorter pattern';
  if (isRun(token)) return 'it is a run of consecutive characters';
  return undefined;
}

function repeatsUnit(s: string): boolean {
  for (let unit = 1; unit <= s.length / 2; unit++) {
    if (s.length % unit !== 0) continue;
    if (s.slice(unit) === s.slice(0, -unit)) return true;
  }
  return false;
}

/** "abcdef…", "0123456789…" or backwards, wrapping around: most neighbours one code point apart. */
function isRun(s: string): boolean {
  let steps = 0;
  for (let i = 1; i < s.length; i++) if (Math.abs(s.charCodeAt(i) - s.charCodeAt(i - 1)) === 1) steps++;
  return steps >= (s.length - 1) * 0.75;
}

/** Only this machine can connect: 127.0.0.0/8, ::1 (also IPv4-mapped) and `localhost`. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIPv4(h)) return h.startsWith('127.');
  if (!isIPv6(h)) return false;
  const canonical = new URL(`http://[${h}]/`).hostname; // [::1], [::ffff:7f00:1]
  return canonical === '[::1]' || /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(canonical);
}

export type AdminTokenCheck = { readonly refuse: string } | { readonly warn: string } | undefined;

/**
 * Refuse (non-loopback, weak token), warn (loopback, weak token) or nothing. No token at all is not
 * refused: the admin API is then disabled (403) and only /healthz, /readyz and /metrics answer.
 */
export function checkAdminToken(host: string, port: number, token: string | undefined): AdminTokenCheck {
  if (token === undefined || token === '') return undefined;
  const weakness = adminTokenWeakness(token);
  if (weakness === undefined) return undefined;
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  if (isLoopbackHost(host)) return { warn: `PORTCULLIS_ADMIN_TOKEN is weak (${weakness}); accepted only because the admin listener ${where} is loopback` };
  return {
    refuse:
      `the admin listener ${where} is not a loopback address, and PORTCULLIS_ADMIN_TOKEN cannot guard it: ${weakness}. ` +
      `Set a random token of at least ${MIN_ADMIN_TOKEN_BYTES} bytes (e.g. PORTCULLIS_ADMIN_TOKEN=$(openssl rand -hex 32)), ` +
      'or bind the admin listener to loopback (--admin 127.0.0.1:9090)',
  };
}
