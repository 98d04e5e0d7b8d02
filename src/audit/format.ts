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

// Events of one batch mostly share a millisecond: format the timestamp once per distinct ms.
let lastMs = -1;
let lastIso = '';
function isoTime(ms: number): string {
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = `"${new Date(ms).toISOString()}"`;
  }
  return lastIso;
}

// The previous event's actor and decision members, and the inputs they were built from.
let aKeyId: string | null | undefined;
let aSubject: string | null | undefined;
let aTenant: string | null | undefined;
let aVia: string | null | undefined;
let actor = '';
let dAllowed: boolean | undefined;
let dCode: string | null | undefined;
let dPermission: string | null | undefined;
let dShadow: string | null | undefined;
let decision = '';
let rIp: string | undefined;
let rIpJson = '';
let rMethod: string | undefined;
let rMethodJson = '';
let rRoute: string | null | undefined;
let rRouteJson = '';

/** The event as two halves; the `chain` member goes between them (keys sort actor < chain < decision). */
export function formatHalves(r: AuditRecord, id: string): [head: string, tail: string] {
  const time = isoTime(r.time);
  if (r.kind === 1) {
    return ['{"actor":null', `,"decision":null,"detail":${canonicalJson(r.detail)},"id":${q(id)},"request":null,"response":null,"severity":${q(r.severity)},"time":${time},"type":${q(r.type)},"v":1}`];
  }
  if (r.keyId !== aKeyId || r.subject !== aSubject || r.tenant !== aTenant || r.via !== aVia) {
    aKeyId = r.keyId;
    aSubject = r.subject;
    aTenant = r.tenant;
    aVia = r.via;
    actor = `{"actor":{"keyId":${n(r.keyId)},"subject":${n(r.subject)},"tenant":${n(r.tenant)},"via":${n(r.via)}}`;
  }
  if (r.allowed !== dAllowed || r.code !== dCode || r.permission !== dPermission || r.shadow !== dShadow) {
    dAllowed = r.allowed;
    dCode = r.code;
    dPermission = r.permission;
    dShadow = r.shadow;
    decision = `,"decision":{"allowed":${r.allowed},"code":${n(r.code)},"permission":${n(r.permission)},"shadow":${n(r.shadow)}},"detail":null,"id":`;
  }
  if (r.ip !== rIp) rIpJson = jsonString((rIp = r.ip));
  if (r.method !== rMethod) rMethodJson = jsonString((rMethod = r.method));
  if (r.route !== rRoute) rRouteJson = n((rRoute = r.route));
  const severity = r.allowed ? 'info' : 'notice';
  return [
    actor,
    `${decision}${jsonString(id)},"request":{"id":${jsonString(r.requestId)},"ip":${rIpJson},"method":${rMethodJson},"path":${jsonString(r.path)},"route":${rRouteJson}}` +
      `,"response":{"durationMs":${Math.round(r.durationMs * 1000) / 1000},"status":${r.status}},"severity":"${severity}","time":${time},"type":"request","v":1}`,
  ];
}
