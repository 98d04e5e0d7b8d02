// The audit event model, version 1. Every event has every key (null when unknown) so that the
// hand-built line (format.ts) and the generic canonical form (chain.ts) are byte-identical.
import type { SystemEventType } from '../events.js';

export type AuditSeverity = 'info' | 'notice' | 'warning' | 'error';

/** What the request path hands over: references to strings it already has, no copies. */
export interface RequestRecord {
  readonly kind: 0;
  readonly time: number;
  readonly requestId: string;
  readonly method: string;
  readonly path: string;
  readonly route: string | null;
  /** The path the upstream got when a rewrite changed it; null (or absent) when it got `path`'s. */
  readonly upstreamPath?: string | null;
  readonly ip: string;
  readonly subject: string | null;
  readonly tenant: string | null;
  readonly keyId: string | null;
  readonly via: string | null;
  readonly allowed: boolean;
  readonly code: string | null;
  readonly permission: string | null;
  readonly shadow: string | null;
  readonly status: number;
  readonly durationMs: number;
  /** The decision door that asked; null for a request the proxy forwarded (the event then has no request.via/door). */
  readonly door: string | null;
  /** Tokens charged (metered upstreams); null or absent: not metered. */
  readonly tokens?: number | null;
}

/**
 * The fields of a request record in their one order: the request thread sends them so to the audit
 * worker (recorder.ts) and the worker reads them back by this table (wire.ts).
 */
export const REQUEST_RECORD_FIELDS = [
  'time',
  'requestId',
  'method',
  'path',
  'route',
  'ip',
  'subject',
  'tenant',
  'keyId',
  'via',
  'allowed',
  'code',
  'permission',
  'shadow',
  'status',
  'durationMs',
  'door',
  'upstreamPath',
  'tokens',
] as const;
/** What a repeat of the previous request record carries (the rest is the previous record's). */
export const REPEAT_RECORD_FIELDS = ['time', 'requestId', 'path', 'status', 'durationMs', 'upstreamPath', 'tokens'] as const;
// Every field of RequestRecord is in the table (a field added to one and not the other fails to compile).
const everyField: Record<Exclude<keyof RequestRecord, 'kind'>, true> = Object.fromEntries(REQUEST_RECORD_FIELDS.map((f) => [f, true])) as Record<(typeof REQUEST_RECORD_FIELDS)[number], true>;
void everyField;

interface SystemRecord {
  readonly kind: 1;
  readonly time: number;
  readonly type: SystemEventType;
  readonly severity: AuditSeverity;
  readonly detail: Readonly<Record<string, unknown>>;
}

export type AuditRecord = RequestRecord | SystemRecord;

/**
 * Ids sort by time then by counter and are unique per process without randomness on the hot path:
 * `<base36 ms, 9 chars>-<instance>-<base36 counter>`. The counter (not the clock) orders events
 * within one instance.
 */
export class EventIds {
  readonly #prefix: string;
  #n = 0;
  // Radix conversion of the clock is the expensive part: done once per distinct millisecond.
  #lastTime = -1;
  #head = '';
  constructor(instance: string) {
    this.#prefix = instance;
  }
  next(time: number): string {
    if (time !== this.#lastTime) {
      this.#lastTime = time;
      this.#head = `${time.toString(36).padStart(9, '0')}-${this.#prefix}-`;
    }
    return `${this.#head}${(this.#n++).toString(36).padStart(6, '0')}`;
  }
}
