// Client certificates as credentials (`authentication.mtls`). The credential is the certificate the
// TLS handshake verified against --tls-client-ca, or, behind a proxy that terminates TLS, the
// `x-forwarded-client-cert` header (Envoy's format) that proxy wrote, believed only when the peer
// is a trusted proxy. The first rule whose `match` fits one of the certificate's names (a URI SAN
// such as a SPIFFE id, or a DNS SAN) maps it to a principal; a verified certificate that no rule
// maps is refused, never passed on to a weaker method. No certificate at all is "not mine".
import type { Principal } from '../core/principal.js';
import { type Deny, deny } from '../core/reasons.js';
import { type Authenticator, type AuthOutcome, NOT_MINE } from './authenticator.js';
import { isSafeHeaderValue } from './claims.js';

const XFCC = 'x-forwarded-client-cert';

/** Which name of the certificate becomes the principal's subject. */
type MtlsSubject = 'uri' | 'dns' | 'cn';

export interface MtlsRule {
  readonly name: string;
  readonly kind: 'uri' | 'dns';
  readonly pattern: RegExp;
  readonly subject: MtlsSubject;
  readonly tenant: string | undefined;
  readonly roles: readonly string[];
  readonly permissions: readonly string[];
}

/** What the authenticator reads of a certificate, from the handshake or from XFCC. */
export interface CertificateNames {
  readonly uris: readonly string[];
  readonly dns: readonly string[];
  readonly cn: string | undefined;
  /** Epoch ms after which the certificate is no longer valid (handshake certificates only). */
  readonly notAfter: number;
}

/**
 * The part of a TLS socket this module reads: `authorized` and the peer certificate. A TLSSocket
 * has both, an HTTP/2 session's `socket` proxies them, and `portcullis test` hands a stand-in.
 */
interface PeerCertificateSource {
  readonly authorized: boolean;
  readonly authorizationError?: Error | string | null | undefined;
  getPeerCertificate(detailed?: boolean): { subject?: Record<string, string | string[]> | undefined; subjectaltname?: string | undefined; valid_to?: string | undefined } | null;
}

const INVALID = deny('AUTH_INVALID');
const EXPIRED = deny('AUTH_EXPIRED');

/** A connection without a certificate, remembered so it is not asked again. */
const NONE = Symbol('no certificate');
type Seen = CertificateNames | typeof NONE | { readonly unverified: string };

/** What one TLS connection presented, read once: the handshake, and so the certificate, cannot change (renegotiation is off). */
const byConnection = new WeakMap<object, Seen>();

function isCertificateSource(c: object): c is PeerCertificateSource {
  return typeof (c as { getPeerCertificate?: unknown }).getPeerCertificate === 'function';
}

function namesOfConnection(connection: object | undefined): Seen {
  if (connection === undefined || !isCertificateSource(connection)) return NONE;
  let seen = byConnection.get(connection);
  if (seen !== undefined) return seen;
  const cert = connection.getPeerCertificate(false);
  if (cert === null || cert.subject === undefined) seen = NONE;
  else if (!connection.authorized) seen = { unverified: String(connection.authorizationError ?? 'not verified') };
  else {
    const san = parseSubjectAltName(cert.subjectaltname ?? '');
    const cn = cert.subject.CN;
    seen = { uris: san.uris, dns: san.dns, cn: Array.isArray(cn) ? cn[0] : cn, notAfter: cert.valid_to === undefined ? Number.POSITIVE_INFINITY : Date.parse(cert.valid_to) };
  }
  byConnection.set(connection, seen);
  return seen;
}

/**
 * Node's `subjectaltname`: `URI:spiffe://a/b, DNS:x.example.org`; a name with a comma, quote or
 * control character is written as a JSON string (`DNS:"a,b"`).
 */
export function parseSubjectAltName(text: string): { uris: string[]; dns: string[] } {
  const uris: string[] = [];
  const dns: string[] = [];
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon === -1) break;
    const kind = text.slice(i, colon).trim();
    let value: string;
    let next: number;
    if (text[colon + 1] === '"') {
      let end = colon + 2;
      while (end < text.length && text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      try {
        value = JSON.parse(text.slice(colon + 1, end + 1)) as string;
      } catch {
        value = '';
      }
      next = text.indexOf(',', end + 1);
    } else {
      next = text.indexOf(', ', colon);
      value = text.slice(colon + 1, next === -1 ? text.length : next);
    }
    if (kind === 'URI') uris.push(value);
    else if (kind === 'DNS') dns.push(value);
    if (next === -1) break;
    i = next + 1;
    while (text[i] === ' ') i++;
  }
  return { uris, dns };
}

/** The last `x-forwarded-client-cert` line, or undefined. */
function xfccOf(raw: readonly string[]): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 23 && name.toLowerCase() === XFCC) value = raw[i + 1];
  }
  return value;
}

/**
 * The names in the last element of an XFCC value: the element the nearest proxy (our trusted
 * peer) appended for the client it saw. Envoy's grammar: elements separated by `,`, pairs by `;`,
 * values optionally double-quoted with `\"` escapes. Undefined when the element names nothing.
 */
export function parseXfcc(value: string): CertificateNames | undefined {
  const elements = splitOutsideQuotes(value, ',');
  const last = elements[elements.length - 1];
  if (last === undefined) return undefined;
  const uris: string[] = [];
  const dns: string[] = [];
  let cn: string | undefined;
  for (const pair of splitOutsideQuotes(last, ';')) {
    const eq = pair.indexOf('=');
    if (eq === -1) continue;
    const key = pair.slice(0, eq).trim().toLowerCase();
    const v = unquote(pair.slice(eq + 1).trim());
    if (key === 'uri' && v !== '') uris.push(v);
    else if (key === 'dns' && v !== '') dns.push(v);
    else if (key === 'subject') cn = commonName(v);
  }
  if (uris.length === 0 && dns.length === 0 && cn === undefined) return undefined;
  return { uris, dns, cn, notAfter: Number.POSITIVE_INFINITY };
}

function splitOutsideQuotes(s: string, sep: string): string[] {
  const out: string[] = [];
  let quoted = false;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '\\' && quoted) i++;
    else if (c === '"') quoted = !quoted;
    else if (c === sep && !quoted) {
      out.push(s.slice(start, i).trim());
      start = i + 1;
    }
  }
  const tail = s.slice(start).trim();
  if (tail !== '') out.push(tail);
  return out;
}

function unquote(v: string): string {
  if (v.length < 2 || v[0] !== '"' || v[v.length - 1] !== '"') return v;
  return v.slice(1, -1).replace(/\\(.)/g, '$1');
}

/** CN from an RFC 4514 subject (`CN=web,OU=apps,O=Example`). */
function commonName(subject: string): string | undefined {
  for (const part of splitOutsideQuotes(subject, ',')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim().toUpperCase() === 'CN') return part.slice(eq + 1).trim();
  }
  return undefined;
}

/**
 * A `match` glob as a regular expression: `*` is one or more characters of one segment (never
 * `/` in a URI, never `.` in a DNS name), `**` any run in a URI; everything else literal.
 */
export function globPattern(glob: string, kind: 'uri' | 'dns'): RegExp {
  const segment = kind === 'uri' ? '[^/]+' : '[^.]+';
  let src = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (kind === 'uri' && glob[i + 1] === '*') {
        src += '.+';
        i++;
      } else src += segment;
    } else src += c.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${src}$`, kind === 'dns' ? 'i' : '');
}

export class MtlsAuthenticator implements Authenticator {
  readonly method = 'mtls' as const;
  // A client certificate is asked for in the handshake; the 401 only names the method (no registered scheme exists).
  readonly challenge = 'MutualTLS realm="portcullis"';
  readonly #rules: readonly MtlsRule[];
  /** Principals by what they were made from: one per connection, and one per XFCC value seen last. */
  readonly #outcomes = new WeakMap<CertificateNames, AuthOutcome>();
  #lastXfcc = '';
  #lastXfccOutcome: AuthOutcome | undefined;

  constructor(rules: readonly MtlsRule[]) {
    this.#rules = rules;
  }

  authenticate(rawHeaders: readonly string[], connection?: object, trustedPeer?: boolean): AuthOutcome | typeof NOT_MINE {
    if (trustedPeer === true) {
      const xfcc = xfccOf(rawHeaders);
      if (xfcc !== undefined) {
        if (xfcc === this.#lastXfcc && this.#lastXfccOutcome !== undefined) return this.#lastXfccOutcome;
        const names = parseXfcc(xfcc);
        const out = names === undefined ? fail('xfcc-unreadable') : this.#map(names);
        this.#lastXfcc = xfcc;
        this.#lastXfccOutcome = out;
        return out;
      }
    }
    const seen = namesOfConnection(connection);
    if (seen === NONE) return NOT_MINE;
    if ('unverified' in seen) return fail(`certificate-not-verified: ${seen.unverified}`);
    if (Date.now() > seen.notAfter) return { deny: EXPIRED, failure: 'certificate-expired' };
    let out = this.#outcomes.get(seen);
    if (out === undefined) this.#outcomes.set(seen, (out = this.#map(seen)));
    return out;
  }

  /** The identity a certificate's names map to, by the first rule that matches. */
  #map(names: CertificateNames): AuthOutcome {
    for (const rule of this.#rules) {
      const candidates = rule.kind === 'uri' ? names.uris : names.dns;
      const matched = candidates.find((n) => rule.pattern.test(n));
      if (matched === undefined) continue;
      const subject = rule.subject === rule.kind ? matched : rule.subject === 'uri' ? names.uris[0] : rule.subject === 'dns' ? names.dns[0] : names.cn;
      if (subject === undefined || subject === '') return fail(`rule ${rule.name}: the certificate has no ${rule.subject} name for the subject`);
      if (!isSafeHeaderValue(subject)) return fail(`rule ${rule.name}: the ${rule.subject} name is not a safe header value`);
      const principal: Principal = Object.freeze({
        subject,
        tenant: rule.tenant,
        roles: rule.roles,
        permissions: rule.permissions,
        keyId: undefined,
        via: 'mtls' as const,
        credential: `mtls:${subject}`,
      });
      return Object.freeze({ principal });
    }
    return fail('no-rule-matches');
  }
}

function fail(failure: string): AuthOutcome {
  return { deny: INVALID as Deny, failure };
}
