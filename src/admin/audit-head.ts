// GET /admin/audit/head: the audit chain's newest head and last signed checkpoint, for an auditor
// to record now and check later with `portcullis audit verify --expect-head SEQ:HASH` (a file cut
// back past a recorded head then fails).
import type { PublishedHead } from '../audit/pipeline.js';
import type { RegisterRoute } from './routes.js';

export interface AuditHeads {
  readonly plan: { readonly chain: boolean };
  readonly instance: string;
  readonly head: PublishedHead | undefined;
  readonly lastCheckpoint: PublishedHead | undefined;
}

const view = (h: PublishedHead | undefined) => (h === undefined ? null : { seq: h.seq, hash: h.hash, time: h.time, ...(h.reason ? { reason: h.reason } : {}), expectHead: `${h.seq}:${h.hash}` });

export function auditHeadRoutes(route: RegisterRoute, audit: AuditHeads | undefined): void {
  route('GET', '/admin/audit/head', () => {
    if (audit === undefined || !audit.plan.chain) {
      return { status: 404, problem: { title: 'Not Found', detail: 'the audit chain is off (audit.chain: true enables it)' } };
    }
    return { status: 200, body: { instance: audit.instance, head: view(audit.head), checkpoint: view(audit.lastCheckpoint) } };
  });
}
