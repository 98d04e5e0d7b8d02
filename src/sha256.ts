// SHA-256 as lower-case hex, the one digest Portcullis uses (API key lookup, the audit chain).
// crypto.hash (Node ≥ 20.12) is the one-shot form: several times cheaper than createHash per call.
import crypto, { createHash } from 'node:crypto';

const oneShot = (crypto as { hash?: (alg: string, data: string, enc: 'hex') => string }).hash;

export function sha256Hex(data: string): string {
  return oneShot !== undefined ? oneShot('sha256', data, 'hex') : createHash('sha256').update(data).digest('hex');
}
