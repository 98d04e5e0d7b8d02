// The hash chain. Definition (stable; `audit verify` and third parties rely on it):
//   canonical(e) = JSON of e with object keys sorted by UTF-16 code unit order at every level,
//                  no whitespace, numbers and strings as JSON.stringify writes them,
//                  with `chain.hash` removed (chain.instance, chain.seq, chain.prev stay in);
//   hash(e)      = lower-case hex sha256 of the UTF-8 bytes of (prev + canonical(e)),
//                  prev being the previous event's hash in hex (64 chars).
// The first event of a chain has prev = GENESIS (64 zeros); a chain continued after a restart or a
// rotation names the previous head as its prev, so segments verify as one chain.
import { canonicalJson } from '../canonical-json.js';
import { sha256Hex } from '../sha256.js';

export const GENESIS = '0'.repeat(64);

export function chainHash(prev: string, canonical: string): string {
  return sha256Hex(prev + canonical);
}

/** canonical(e) of a parsed event: drops chain.hash and canonicalises the rest. */
export function canonicalWithoutHash(event: Record<string, unknown>): string {
  const chain = event.chain as Record<string, unknown> | undefined;
  if (chain === undefined) return canonicalJson(event);
  const { hash: _hash, ...rest } = chain;
  return canonicalJson({ ...event, chain: rest });
}

export interface ChainHead {
  readonly instance: string;
  /** seq of the next event. */
  readonly seq: number;
  readonly prev: string;
}
