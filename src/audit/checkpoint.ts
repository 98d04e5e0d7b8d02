// Signed checkpoints: an `audit.checkpoint` event in the chain names the head it follows
// (instance, seq, hash) and signs it, so an auditor holding the key can prove that everything up to
// it was written by the gateway and is intact. A hash chain alone cannot show that events were cut
// off its end; a signed head, a head recorded elsewhere (`--expect-head`) or a closing checkpoint
// can. Definition (stable; third parties may verify it):
//   message   = "portcullis-audit-checkpoint-v1\n" + instance + "\n" + seq + "\n" + hash + "\n" + time + "\n" + reason
//               (seq and hash of the event the checkpoint follows, time of the checkpoint event as written)
//   sig       = base64url of HMAC-SHA256(key, message) | Ed25519 signature of message
//   keyId     = first 16 hex of sha256 of the HMAC key bytes | of the Ed25519 public key (SPKI DER)
import { createHash, createHmac, createPrivateKey, createPublicKey, type KeyObject, sign, timingSafeEqual, verify } from 'node:crypto';

export type CheckpointAlgorithm = 'hmac-sha256' | 'ed25519';
export type CheckpointReason = 'interval' | 'events' | 'reload' | 'shutdown';

/** Shortest HMAC key accepted: the hash's own size. */
const MIN_HMAC_KEY_BYTES = 32;

export function checkpointMessage(instance: string, seq: number, hash: string, time: string, reason: string): string {
  return `portcullis-audit-checkpoint-v1\n${instance}\n${seq}\n${hash}\n${time}\n${reason}`;
}

const isPem = (text: string): boolean => text.includes('-----BEGIN ');

/** The algorithm a key's text implies: a PEM key is Ed25519, anything else an HMAC secret. */
function algorithmOf(keyText: string): CheckpointAlgorithm {
  return isPem(keyText) ? 'ed25519' : 'hmac-sha256';
}

/** Signs checkpoints with the gateway's key (an HMAC secret or an Ed25519 private key in PEM). */
export class CheckpointSigner {
  readonly alg: CheckpointAlgorithm;
  readonly keyId: string;
  readonly #hmac: Buffer | undefined;
  readonly #private: KeyObject | undefined;

  /** Throws with a sentence fit for a policy error when the key does not fit the algorithm. */
  constructor(keyText: string, alg: CheckpointAlgorithm = algorithmOf(keyText)) {
    this.alg = alg;
    if (alg === 'hmac-sha256') {
      if (isPem(keyText)) throw new Error('hmac-sha256 needs a secret, not a PEM key (an Ed25519 key needs algorithm: ed25519)');
      const bytes = Buffer.from(keyText, 'utf8');
      if (bytes.length < MIN_HMAC_KEY_BYTES) throw new Error(`an hmac-sha256 checkpoint key needs at least ${MIN_HMAC_KEY_BYTES} bytes (got ${bytes.length}); generate one with: openssl rand -hex 32`);
      this.#hmac = bytes;
      this.keyId = keyIdOf(bytes);
    } else {
      let key: KeyObject;
      try {
        key = createPrivateKey(keyText);
      } catch {
        throw new Error('ed25519 needs an Ed25519 private key in PEM (openssl genpkey -algorithm ed25519)');
      }
      if (key.asymmetricKeyType !== 'ed25519') throw new Error(`ed25519 needs an Ed25519 private key, not ${key.asymmetricKeyType ?? 'this key'}`);
      this.#private = key;
      this.keyId = keyIdOf(createPublicKey(key).export({ type: 'spki', format: 'der' }));
    }
  }

  sign(message: string): string {
    if (this.#hmac) return createHmac('sha256', this.#hmac).update(message).digest('base64url');
    return sign(null, Buffer.from(message, 'utf8'), this.#private!).toString('base64url');
  }
}

/** The auditor's side: an HMAC secret, or an Ed25519 public (or private) key in PEM. */
export class CheckpointVerifier {
  readonly alg: CheckpointAlgorithm;
  readonly keyId: string;
  readonly #hmac: Buffer | undefined;
  readonly #public: KeyObject | undefined;

  constructor(keyText: string) {
    this.alg = algorithmOf(keyText);
    if (this.alg === 'hmac-sha256') {
      this.#hmac = Buffer.from(keyText, 'utf8');
      this.keyId = keyIdOf(this.#hmac);
    } else {
      let key: KeyObject;
      try {
        key = keyText.includes('PRIVATE KEY') ? createPublicKey(createPrivateKey(keyText)) : createPublicKey(keyText);
      } catch {
        throw new Error('the key is PEM but not an Ed25519 key Node can read');
      }
      if (key.asymmetricKeyType !== 'ed25519') throw new Error(`the key is ${key.asymmetricKeyType ?? 'not Ed25519'}: checkpoints are signed with hmac-sha256 or ed25519`);
      this.#public = key;
      this.keyId = keyIdOf(key.export({ type: 'spki', format: 'der' }));
    }
  }

  verify(message: string, sig: string): boolean {
    const got = Buffer.from(sig, 'base64url');
    if (this.#hmac) {
      const want = createHmac('sha256', this.#hmac).update(message).digest();
      return got.length === want.length && timingSafeEqual(got, want);
    }
    return verify(null, Buffer.from(message, 'utf8'), this.#public!, got);
  }
}

function keyIdOf(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex').slice(0, 16);
}
