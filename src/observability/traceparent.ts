// W3C Trace Context: a valid incoming `traceparent` is propagated with a new parent id (this hop
// is a span); an absent or invalid one starts a new trace.
import { randomBytes } from 'node:crypto';

export const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
export const ZERO_TRACE = '0'.repeat(32);
export const ZERO_SPAN = '0'.repeat(16);

// Random ids are cut from a pooled hex string: one randomBytes call and one hex conversion per
// ~170 traceparents, instead of a native call per id.
const POOL_BYTES = 4096;
let pool = '';
let offset = 0;
export function randomHex(bytes: number): string {
  const chars = bytes * 2;
  if (offset + chars > pool.length) {
    pool = randomBytes(POOL_BYTES).toString('hex');
    offset = 0;
  }
  const s = pool.slice(offset, offset + chars);
  offset += chars;
  return s;
}

export function traceparentFor(header: string | string[] | undefined): string {
  if (typeof header === 'string') {
    const m = TRACEPARENT.exec(header);
    if (m !== null && m[1] !== 'ff' && m[2] !== ZERO_TRACE && m[3] !== ZERO_SPAN) return `00-${m[2]}-${randomHex(8)}-${m[4]}`;
  }
  // One hex conversion for both ids: 16 bytes of trace id, then 8 of parent id.
  const ids = randomHex(24);
  return `00-${ids.slice(0, 32)}-${ids.slice(32)}-01`;
}
