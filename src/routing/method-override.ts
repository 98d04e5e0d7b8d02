// Method-override headers (X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override) make Express,
// Symfony, Laravel, ASP.NET and others serve a POST as the method they name. Unless a route opts in
// (`methodOverride`), the upstream never sees them (upstream/headers.ts removes every copy). Where a
// route opts in, the request is routed and authorized as the overridden method, and what the
// gateway checked is what the upstream will do: one method, named once, on a POST.
import { type Deny, deny } from '../core/reasons.js';
import { METHOD_OVERRIDE_HEADERS } from '../header-names.js';

const BAD_VALUE = deny('BAD_REQUEST', 'A method-override header does not name one HTTP method.');
const CONFLICT = deny('BAD_REQUEST', 'The method-override headers name more than one method, or one of them is repeated.');
export const OVERRIDE_NOT_POST = deny('BAD_REQUEST', 'A method override is honoured on POST requests only.');

const TOKEN = new Uint8Array(128);
for (const ch of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") TOKEN[ch.charCodeAt(0)] = 1;
const LENGTHS = new Set(METHOD_OVERRIDE_HEADERS.map((n) => n.length));
const UNDERSCORES = /_/g;

/** Which override header a (raw) name is, "_" look-alikes included; -1 when none. */
function overrideIndex(name: string): number {
  if (!LENGTHS.has(name.length)) return -1;
  let lower = name.toLowerCase();
  if (lower.indexOf('_') !== -1) lower = lower.replace(UNDERSCORES, '-');
  return METHOD_OVERRIDE_HEADERS.indexOf(lower);
}

/**
 * The method the request's override headers name (upper case), undefined when it has none, or a
 * Deny: a value that is not one method token, two different methods, or one header given twice.
 */
export function requestedOverride(raw: readonly string[]): string | Deny | undefined {
  let method: string | undefined;
  let seen = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const which = overrideIndex(raw[i]!);
    if (which === -1) continue;
    if ((seen & (1 << which)) !== 0) return CONFLICT;
    seen |= 1 << which;
    const value = raw[i + 1]!.trim();
    if (value.length === 0 || value.length > 32) return BAD_VALUE;
    for (let j = 0; j < value.length; j++) {
      const c = value.charCodeAt(j);
      if (c >= 128 || TOKEN[c] === 0) return BAD_VALUE;
    }
    const upper = value.toUpperCase();
    if (method !== undefined && method !== upper) return CONFLICT;
    method = upper;
  }
  return method;
}
