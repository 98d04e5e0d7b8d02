// What every authentication method offers the authenticate stage. A method looks for its own kind
// of credential only: when the request carries none, it answers NOT_MINE and the stage asks the
// route's next method; when it finds one, its answer decides (a principal, or a Deny that is never
// followed by a weaker method).
import type { AuthMethod, Principal } from '../core/principal.js';
import type { Deny } from '../core/reasons.js';

/** "This request carries no credential of my kind." */
export const NOT_MINE: unique symbol = Symbol('not mine');

/** A method's verdict on a credential it found. Logged fields name the credential without revealing it. */
export interface AuthOutcome {
  readonly principal?: Principal | undefined;
  readonly deny?: Deny | undefined;
  /** Why it was refused: logged, never shown to the client. */
  readonly failure?: string | undefined;
  /** The API key's id, when the key was found. */
  readonly keyId?: string | undefined;
  /** The token's `kid` and `iss`, when it had them. */
  readonly kid?: string | undefined;
  readonly iss?: string | undefined;
}

export interface Authenticator {
  readonly method: AuthMethod;
  /** The WWW-Authenticate challenge this method answers a missing credential with. */
  readonly challenge: string;
  /**
   * `connection`: the same object for every request of one connection (a memo key, and the TLS
   * socket a client certificate is read from), when there is one. `trustedPeer`: the peer is a
   * trusted proxy, whose headers about the client (x-forwarded-client-cert) may be believed.
   */
  authenticate(rawHeaders: readonly string[], connection?: object, trustedPeer?: boolean): AuthOutcome | Promise<AuthOutcome> | typeof NOT_MINE;
}
