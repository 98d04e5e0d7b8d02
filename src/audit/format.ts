// Builds an event's NDJSON line by hand, keys already in canonical (sorted) order, so the batch
// writer hashes the very string it writes (before safeJsonLine's escapes, which parsing undoes)
// instead of running a generic canonicaliser per event.
// This runs once per request: consecutive events mostly share their principal, route, decision
// and millisecond, so those parts are reused from the previous event when their inputs are equal.
import { canonicalJson } from '../canonical-json.js';
import type { AuditRecord } from './event.js';

const q = JSON.stringify;

/**
 * JSON.stringify(v) for a string, byte for byte: strings with nothing JSON escapes (", \, control
 * characters, surrogates: lone ones are escaped) are just quoted, which is several times cheaper.
 */
export function jsonString(v: string): string {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return q(v);
  }
  return `"${v}"`;
}

const n = (v: string | null): string => (v === null ? 'null' : jsonString(v));

/**
 * Formats the events of one pipeline. Events of one batch mostly share a millisecond, a principal,
 * a route and a decision: each part is rebuilt only when its inputs differ from the previous event's.
 */
export class EventFormatter {
  #lastMs = -1;
  #lastIso = '';
  // The previous event's actor and decision members, and the inputs they were built from.
  #aKeyId: string | null | undefined;
  #aSubject: string | null | undefined;
  #aTenant: string | null | undefined;
  #aVia: string | null | undefined;
  #actor = '';
  #dAllowed: boolean | undefined;
  #dCode: string | null | undefined;
  #dPermission: string | null | undefined;
  #dShadow: string | null | undefined;
  #decision = '';
  #rIp: string | undefined;
  #rIpJson = '';
  #rMethod: string | undefined;
  #rMethodJson = '';
  #rRoute: string | null | undefined;
  #rRouteJson = '';

  #isoTime(ms: number): string {
    if (ms !== this.#lastMs) {
      this.#lastMs = ms;
      this.#lastIso = `"${new Date(ms).toISOString()}"`;
    }
    return this.#lastIso;
  }

  /** The event as two halves; the `chain` member goes between them (keys sort actor < chain < decision). */
  halves(r: AuditRecord, id: string): [head: string, tail: string] {
    const time = this.#isoTime(r.time);
    if (r.kind === 1) {
      return [
        '{"actor":null',
        `,"decision":null,"detail":${canonicalJson(r.detail)},"id":${q(id)},"request":null,"response":null,"severity":${q(r.severity)},"time":${time},"type":${q(r.type)},"v":1}`,
      ];
    }
    if (r.keyId !== this.#aKeyId || r.subject !== this.#aSubject || r.tenant !== this.#aTenant || r.via !== this.#aVia) {
      this.#aKeyId = r.keyId;
      this.#aSubject = r.subject;
      this.#aTenant = r.tenant;
      this.#aVia = r.via;
      this.#actor = `{"actor":{"keyId":${n(r.keyId)},"subject":${n(r.subject)},"tenant":${n(r.tenant)},"via":${n(r.via)}}`;
    }
    if (r.allowed !== this.#dAllowed || r.code !== this.#dCode || r.permission !== this.#dPermission || r.shadow !== this.#dShadow) {
      this.#dAllowed = r.allowed;
      this.#dCode = r.code;
      this.#dPermission = r.permission;
      this.#dShadow = r.shadow;
      this.#decision = `,"decision":{"allowed":${r.allowed},"code":${n(r.code)},"permission":${n(r.permission)},"shadow":${n(r.shadow)}},"detail":null,"id":`;
    }
    if (r.ip !== this.#rIp) this.#rIpJson = jsonString((this.#rIp = r.ip));
    if (r.method !== this.#rMethod) this.#rMethodJson = jsonString((this.#rMethod = r.method));
    if (r.route !== this.#rRoute) this.#rRouteJson = n((this.#rRoute = r.route));
    const severity = r.allowed ? 'info' : 'notice';
    // Only a decision's event names its door (records written before doors existed have none).
    const door = r.door ?? undefined;
    return [
      this.#actor,
      `${this.#decision}${jsonString(id)},"request":{${door === undefined ? '' : `"door":${jsonString(door)},`}"id":${jsonString(r.requestId)},"ip":${this.#rIpJson},"method":${this.#rMethodJson},"path":${jsonString(r.path)},"route":${this.#rRouteJson},"upstreamPath":${n(r.upstreamPath ?? null)}${door === undefined ? '' : ',"via":"decision"'}}` +
        `,"response":{"durationMs":${Math.round(r.durationMs * 1000) / 1000},"status":${r.status},"tokens":${r.tokens ?? null}},"severity":"${severity}","time":${time},"type":"request","v":1}`,
    ];
  }
}
