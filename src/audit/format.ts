// Builds an event's NDJSON line by hand, keys already in canonical (sorted) order, so the batch
// writer hashes the very string it writes instead of running a generic canonicaliser per event.
import { canonicalJson } from './chain.js';
import type { AuditRecord } from './event.js';

const q = JSON.stringify;
const n = (v: string | null): string => (v === null ? 'null' : q(v));

/** The event as two halves; the `chain` member goes between them (keys sort actor < chain < decision). */
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

export function formatHalves(r: AuditRecord, id: string): [head: string, tail: string] {
  const time = isoTime(r.time);
  if (r.kind === 1) {
    return [
      '{"actor":null',
      `,"decision":null,"detail":${canonicalJson(r.detail)},"id":${q(id)},"request":null,"response":null,"severity":${q(r.severity)},"time":${time},"type":${q(r.type)},"v":1}`,
    ];
  }
  const severity = r.allowed ? 'info' : 'notice';
  return [
    `{"actor":{"keyId":${n(r.keyId)},"subject":${n(r.subject)},"tenant":${n(r.tenant)},"via":${n(r.via)}}`,
    `,"decision":{"allowed":${r.allowed},"code":${n(r.code)},"permission":${n(r.permission)},"shadow":${n(r.shadow)}}` +
      `,"detail":null,"id":${q(id)},"request":{"id":${q(r.requestId)},"ip":${q(r.ip)},"method":${q(r.method)},"path":${q(r.path)},"route":${n(r.route)}}` +
      `,"response":{"durationMs":${Math.round(r.durationMs * 1000) / 1000},"status":${r.status}},"severity":"${severity}","time":${time},"type":"request","v":1}`,
  ];
}
