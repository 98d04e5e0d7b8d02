// One canonical path (DESIGN.md, Security rules): decode percent-escapes exactly once, resolve dot
// segments, and refuse whatever cannot be made unambiguous. The canonical path is what routes are
// matched against; `forwardPath` is the same path re-encoded, so the upstream receives exactly the
// path that was matched (a decoded "%" is sent as "%25": nothing downstream decodes twice).
// Empty segments ("//") are kept as written: merging them would make "/a//b" and "/a/b" the same
// route here while the upstream may treat them differently; the route stage refuses them where
// merging would change the route (`paths.emptySegments`).
// Path parameters (";…" in a segment, RFC 3986 §3.3) are cut from each segment before dot segments
// are resolved by Tomcat, Jetty and Spring, so "/public/..;/admin" reaches them as "/admin". A dot
// segment or an empty segment that carries parameters has no meaning but that one, and is refused
// here (after decoding: "%2e%2e;" and "..%3b" too, since ";" is forwarded unencoded). Whether other
// segments may carry parameters is a policy choice made by the route stage (`paths.semicolons`).
import { type Deny, deny } from '../core/reasons.js';

export interface CanonicalTarget {
  /** Decoded, dot segments resolved: what routes match. */
  readonly path: string;
  /** `path` percent-encoded where needed: what the upstream receives. */
  readonly forwardPath: string;
  /** Raw query including "?", or "". Passed through untouched. */
  readonly query: string;
}

const bad = (why: string): Deny => deny('BAD_REQUEST', why);
const BAD_FORM = bad('The request target must be an absolute path ("/…") or an absolute URL for this host.');
const BAD_HOST = bad('The absolute-form request target names a different host than the Host header.');
const BAD_FRAGMENT = bad('The request target contains a fragment ("#").');
const BAD_BACKSLASH = bad('The path contains a backslash.');
const BAD_CHAR = bad('The path contains a control, space or non-ASCII character.');
const BAD_ESCAPE = bad('The path contains an invalid percent-escape.');
const BAD_ENCODED_SLASH = bad('The path contains an encoded "/" or "\\" (%2F, %5C).');
const BAD_ENCODED_CONTROL = bad('The path contains an encoded NUL or control character.');
const BAD_UTF8 = bad('The decoded path is not valid UTF-8.');
const BAD_DOT_PARAMS = bad('A dot segment or an empty segment carries ";" parameters ("..;", ".;x", "/;x/"): upstream frameworks would resolve it differently.');

const utf8 = new TextDecoder('utf-8', { fatal: true });

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/** The path with every segment's ";" parameters cut off, as Tomcat, Jetty and Spring route it. */
export function withoutParams(path: string): string {
  let out = '';
  let from = 0;
  let semi = path.indexOf(';');
  while (semi !== -1) {
    const next = path.indexOf('/', semi);
    out += path.slice(from, semi);
    if (next === -1) return out;
    from = next;
    semi = path.indexOf(';', next);
  }
  return from === 0 ? path : out + path.slice(from);
}

/**
 * Canonicalises a request target (`req.url`). `host` is the Host header (lower-case, with port if
 * given), used to check the absolute form.
 */
export function canonicalize(target: string, host: string): CanonicalTarget | Deny {
  let rest = target;
  if (rest.charCodeAt(0) !== 47 /* / */) {
    const scheme = rest.startsWith('http://') ? 7 : rest.startsWith('https://') ? 8 : 0;
    if (scheme === 0) return BAD_FORM;
    const slash = rest.indexOf('/', scheme);
    const authorityEnd = slash === -1 ? rest.length : slash;
    const authority = rest.slice(scheme, authorityEnd).toLowerCase();
    if (authority !== host.toLowerCase()) return BAD_HOST;
    rest = slash === -1 ? '/' : rest.slice(slash);
  }
  const q = rest.indexOf('?');
  const rawPath = q === -1 ? rest : rest.slice(0, q);
  const query = q === -1 ? '' : rest.slice(q);
  if (query.indexOf('#') !== -1) return BAD_FRAGMENT;

  let needsDecode = false;
  let hasDot = false;
  let hasParams = false;
  for (let i = 0; i < rawPath.length; i++) {
    const c = rawPath.charCodeAt(i);
    if (c <= 32 || c >= 127) return BAD_CHAR;
    if (c === 92 /* \ */) return BAD_BACKSLASH;
    if (c === 35 /* # */) return BAD_FRAGMENT;
    if (c === 37 /* % */) needsDecode = true;
    else if (c === 46 /* . */ && rawPath.charCodeAt(i - 1) === 47) hasDot = true;
    else if (c === 59 /* ; */) hasParams = true;
  }
  // The common case: nothing to decode, no dot segment, no parameters. No allocation beyond the query split.
  if (!needsDecode && !hasDot && !hasParams) return { path: rawPath, forwardPath: rawPath, query };

  let decoded = rawPath;
  if (needsDecode) {
    const bytes = Buffer.allocUnsafe(rawPath.length);
    let n = 0;
    for (let i = 0; i < rawPath.length; i++) {
      const c = rawPath.charCodeAt(i);
      if (c !== 37) {
        bytes[n++] = c;
        continue;
      }
      const hi = hexValue(rawPath.charCodeAt(i + 1));
      const lo = hexValue(rawPath.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return BAD_ESCAPE;
      const b = hi * 16 + lo;
      if (b === 47 || b === 92) return BAD_ENCODED_SLASH;
      if (b < 32 || b === 127) return BAD_ENCODED_CONTROL;
      bytes[n++] = b;
      i += 2;
    }
    try {
      decoded = utf8.decode(bytes.subarray(0, n));
    } catch {
      return BAD_UTF8;
    }
    for (let i = 0; i < decoded.length; i++) {
      const c = decoded.charCodeAt(i);
      if ((c >= 0x80 && c < 0xa0) || c === 0x2028 || c === 0x2029) return BAD_ENCODED_CONTROL;
    }
  }
  if ((hasParams || needsDecode) && decoded.indexOf(';') !== -1 && paramsHideSegment(decoded)) return BAD_DOT_PARAMS;
  const path = resolveDots(decoded);
  return { path, forwardPath: encodePath(path), query };
}

/** Whether a segment's name (the part before ";") is empty, "." or ".." while it carries parameters. */
function paramsHideSegment(path: string): boolean {
  let semi = path.indexOf(';');
  while (semi !== -1) {
    const start = path.lastIndexOf('/', semi) + 1;
    const len = semi - start;
    if (len === 0 || (len <= 2 && path.charCodeAt(start) === 46 && (len === 1 || path.charCodeAt(start + 1) === 46))) return true;
    const next = path.indexOf('/', semi);
    if (next === -1) return false;
    semi = path.indexOf(';', next);
  }
  return false;
}

/** RFC 3986 §5.2.4 on a decoded path: "." removed, ".." pops (never above the root). */
function resolveDots(path: string): string {
  const input = path.split('/');
  const out: string[] = [];
  for (let i = 1; i < input.length; i++) {
    const seg = input[i]!;
    const last = i === input.length - 1;
    if (seg === '.') {
      if (last) out.push('');
    } else if (seg === '..') {
      if (out.length > 0) out.pop();
      if (last) out.push('');
    } else {
      out.push(seg);
    }
  }
  return `/${out.join('/')}`;
}

// pchar = unreserved / sub-delims / ":" / "@" (RFC 3986), plus "/" between segments.
const KEEP = new Uint8Array(128);
for (const ch of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/") KEEP[ch.charCodeAt(0)] = 1;

/** Percent-encodes everything outside pchar (including "%" itself) as UTF-8. */
export function encodePath(path: string): string {
  let plain = true;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c >= 128 || KEEP[c] === 0) {
      plain = false;
      break;
    }
  }
  if (plain) return path;
  let out = '';
  for (const ch of path) {
    const c = ch.charCodeAt(0);
    if (c < 128 && KEEP[c] === 1) out += ch;
    else for (const b of Buffer.from(ch, 'utf8')) out += `%${b < 16 ? '0' : ''}${b.toString(16).toUpperCase()}`;
  }
  return out;
}

export function isDeny(v: CanonicalTarget | Deny): v is Deny {
  return (v as Deny).code !== undefined;
}
