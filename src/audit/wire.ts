// How records cross from the request thread to the audit worker: one flat array of primitives per
// batch, a kind tag followed by the record's fields in a fixed order. A flat array is cheaper to
// build (no object per request) and to structured-clone (no property names) than an array of
// records, and needs no escaping, unlike a delimited string.
import type { SystemEvent } from '../events.js';
import type { AuditRecord, AuditSeverity, RequestRecord } from './event.js';

export type WireValue = string | number | boolean | null | Readonly<Record<string, unknown>>;

/** Tag of a request record, followed by REQUEST_FIELDS values (see RequestRecord for the order). */
export const REQUEST = 0;
/** Tag of a system record, followed by time, type, severity, detail. */
export const SYSTEM = 1;
const REQUEST_FIELDS = 16;
/**
 * Tag of a request record that shares method, route, ip, actor and decision with the previous
 * request record of the same batch (the common case: one client, one route), followed by time,
 * requestId, path, status, durationMs. Halves what is cloned per request.
 */
export const REQUEST_SAME = 2;

export function appendSystem(out: WireValue[], time: number, e: SystemEvent): void {
  const { type, ...detail } = e;
  out.push(SYSTEM, time, type, severityOf(e), detail);
}

/** The records of one batch, in the order they were appended. Throws on a malformed batch (a bug). */
export function decodeBatch(a: readonly WireValue[]): AuditRecord[] {
  const out: AuditRecord[] = [];
  let prev: RequestRecord | undefined;
  let i = 0;
  while (i < a.length) {
    const tag = a[i];
    if (tag === REQUEST) {
      out.push(
        (prev = {
          kind: 0,
          time: a[i + 1] as number,
          requestId: a[i + 2] as string,
          method: a[i + 3] as string,
          path: a[i + 4] as string,
          route: a[i + 5] as string | null,
          ip: a[i + 6] as string,
          subject: a[i + 7] as string | null,
          tenant: a[i + 8] as string | null,
          keyId: a[i + 9] as string | null,
          via: a[i + 10] as string | null,
          allowed: a[i + 11] as boolean,
          code: a[i + 12] as string | null,
          permission: a[i + 13] as string | null,
          shadow: a[i + 14] as string | null,
          status: a[i + 15] as number,
          durationMs: a[i + 16] as number,
        }),
      );
      i += 1 + REQUEST_FIELDS;
    } else if (tag === REQUEST_SAME) {
      if (prev === undefined) throw new Error(`malformed audit batch: repeat without a request before it at ${i}`);
      out.push({ ...prev, time: a[i + 1] as number, requestId: a[i + 2] as string, path: a[i + 3] as string, status: a[i + 4] as number, durationMs: a[i + 5] as number });
      i += 6;
    } else if (tag === SYSTEM) {
      out.push({
        kind: 1,
        time: a[i + 1] as number,
        type: a[i + 2] as SystemEvent['type'],
        severity: a[i + 3] as AuditSeverity,
        detail: a[i + 4] as Readonly<Record<string, unknown>>,
      });
      i += 5;
    } else {
      throw new Error(`malformed audit batch: tag ${String(tag)} at ${i}`);
    }
  }
  return out;
}

export function severityOf(e: SystemEvent): AuditSeverity {
  switch (e.type) {
    case 'policy.rejected':
    case 'sink.failed':
    case 'store.degraded':
      return 'error';
    case 'lockout':
    case 'breaker.transition':
    case 'key.revoked':
      return 'warning';
    default:
      return 'notice';
  }
}
