// The one identity model every authenticator produces and every later stage reads.

export type AuthMethod = 'apiKey' | 'jwt';

export interface Principal {
  readonly subject: string;
  readonly tenant: string | undefined;
  readonly roles: readonly string[];
  /** Permissions granted directly to the credential (besides those of its roles). */
  readonly permissions: readonly string[];
  /** API key id, or the JWT's `jti`/issuer name; what audit and logs may name. */
  readonly keyId: string | undefined;
  readonly via: AuthMethod | 'test';
}
