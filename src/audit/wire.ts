// How records cross from the request thread to the audit worker: one flat array of primitives per
// batch, a kind tag followed by the record's fields in a fixed order. A flat array is cheaper to
// build (no object per request) and to structured-clone (no property names) than an array of
// records, and needs no escaping, unlike a delimited string.
import type { SystemEvent } from '../events.js';
import { type AuditRecord, type AuditSeverity, REPEAT_RECORD_FIELDS, REQUEST_RECORD_FIELDS, type RequestRecord } from './event.js';

export type WireValue = string | number | boolean | null | Readonly<Record<string, unknown>>;

/** Tag of a request record, followed by its values in REQUEST_RECORD_FIELDS order (event.ts). */
export const REQUEST = 0;
/** Tag of a system record, followed by time, type, severity, detail. */
export const SYSTEM = 1;
/**
 * Tag of a request record that shares method, route, ip, actor and decision with the previous
 * request record of the same batch (the common case: one client, one route), followed by the
 * REPEAT_RECORD_FIELDS values. Halves what is cloned per request.
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
      const r: Record<string, WireValue> = { kind: 0 };
      for (let f = 0; f < REQUEST_RECORD_FIELDS.length; f++) r[REQUEST_RECORD_FIELDS[f]!] = a[i + 1 + f]!;
      out.push((prev = r as unknown as RequestRecord));
      i += 1 + REQUEST_RECORD_FIELDS.length;
    } else if (tag === REQUEST_SAME) {
      if (prev === undefined) throw new Error(`malformed audit batch: repeat without a request before it at ${i}`);
      const r: Record<string, unknown> = { ...prev };
      for (let f = 0; f < REPEAT_RECORD_FIELDS.length; f++) r[REPEAT_RECORD_FIELDS[f]!] = a[i + 1 + f];
      out.push(r as unknown as RequestRecord);
      i += 1 + REPEAT_RECORD_FIELDS.length;
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
    case 'tenant.crossed':
    case 'upstream.health':
    case 'key.revoked':
      return 'warning';
    default:
      return 'notice';
  }
}
