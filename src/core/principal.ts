// The one identity model every authenticator produces and every later stage reads.

export type AuthMethod = 'apiKey' | 'jwt' | 'mtls';

export interface Principal {
  readonly subject: string;
  readonly tenant: string | undefined;
  readonly roles: readonly string[];
  /** Permissions granted directly to the credential (besides those of its roles). */
  readonly permissions: readonly string[];
  /** The API key's id (API key callers only); what audit and logs may name. */
  readonly keyId: string | undefined;
  /** The policy's name of the JWT issuer that vouched for the caller (JWT callers only). */
  readonly issuer?: string | undefined;
  /** The verified token's claims (JWT callers only): what route conditions read as principal.claims. */
  readonly claims?: Readonly<Record<string, unknown>> | undefined;
  readonly via: AuthMethod | 'test';
  /** What `by: key` limits count the caller by when it has no key id or issuer (a client certificate: `mtls:<subject>`). */
  readonly credential?: string | undefined;
  /** The API key's own limits, compiled once per key; undefined: only the tenant's tier applies. */
  readonly limits?: KeyLimits | undefined;
}

/** Limits of one API key (its `limits`), counted under its tenant with the tier, in one store call. */
export interface KeyLimits {
  /** Tokens per millisecond; undefined: no rate. */
  readonly ratePerMs: number | undefined;
  readonly burst: number;
  readonly quota: { readonly limit: number; readonly window: 'minute' | 'hour' | 'day' | 'month' } | undefined;
  /** `"key";q=…;w=…` for RateLimit-Policy, when there is a rate. */
  readonly policyHeader: string | undefined;
}

const byIssuer = new Map<string, string>();

/**
 * What a `by: key` limit counts by: the API key id, or for a JWT caller its issuer ("jwt:<name>",
 * which no key id can spell), or "-" without a credential.
 */
export function credentialKey(p: Principal | undefined): string {
  if (p === undefined) return '-';
  if (p.keyId !== undefined) return p.keyId;
  if (p.credential !== undefined) return p.credential;
  if (p.issuer === undefined) return '-';
  let k = byIssuer.get(p.issuer);
  if (k === undefined) byIssuer.set(p.issuer, (k = `jwt:${p.issuer}`));
  return k;
}
