// Request ids: a trusted proxy's X-Request-Id is kept (when it is a sane token); otherwise one is
// generated from a random per-process prefix and a counter — unique, sortable within a process,
// and far cheaper than a UUID per request.
import { randomBytes } from 'node:crypto';

const prefix = randomBytes(6).toString('base64url');
let counter = 0;

export function newRequestId(): string {
  counter = (counter + 1) % Number.MAX_SAFE_INTEGER;
  return `${prefix}-${counter.toString(36)}`;
}

const VALID = /^[\x21-\x7e]{1,128}$/;

/** The id to use: the trusted proxy's when acceptable, else a new one. */
export function requestIdFor(trusted: boolean, header: string | string[] | undefined): string {
  if (trusted && typeof header === 'string' && VALID.test(header)) return header;
  return newRequestId();
}
