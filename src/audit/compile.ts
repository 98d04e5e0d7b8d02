// `audit:` → a frozen AuditPlan. The pipeline built from it is long-lived: a policy reload that
// changes the audit section is reported by the pipeline as "restart needed" (see pipeline.ts).
import path from 'node:path';
import type { CompileContext } from '../policy/compile-context.js';
import type { AuditSpec, PolicyDocument } from '../policy/schema.js';
import { parseDuration, parseSize } from '../policy/values.js';
import { parseRedisUrl } from '../redis-url.js';
import { type CheckpointAlgorithm, CheckpointSigner } from './checkpoint.js';

declare module '../core/plan.js' {
  interface Plan {
    /** `audit:`; undefined: no audit section. */
    readonly audit: AuditPlan | undefined;
    /** Per route index: which of its requests leave an event (`routes[].audit`, default all). */
    readonly auditModes: readonly AuditMode[];
  }
}

export type AuditMode = 'all' | 'denied' | 'none';

/** `routes[].audit` by route index. */
export function compileAuditModes(doc: PolicyDocument): AuditMode[] {
  return (doc.routes ?? []).map((r) => r.audit ?? 'all');
}

export type SinkConfig =
  | { readonly kind: 'stdout'; readonly name: string }
  | { readonly kind: 'file'; readonly name: string; readonly path: string; readonly rotateBytes: number; readonly retainMs: number; readonly fsync: 'always' | 'batch' | 'never' }
  | { readonly kind: 'redisStream'; readonly name: string; readonly url: string; readonly key: string; readonly maxLen: number }
  | { readonly kind: 'webhook'; readonly name: string; readonly url: string; readonly secret: string | undefined; readonly batch: number };

interface CheckpointPlan {
  /** The key's text (secret or PEM): it crosses to the audit worker, never into logs. */
  readonly key: string;
  readonly alg: CheckpointAlgorithm;
  readonly keyId: string;
  readonly intervalMs: number;
  /** Also checkpoint after this many events (0: by interval only). */
  readonly events: number;
}

export interface AuditPlan {
  readonly chain: boolean;
  readonly checkpoint?: CheckpointPlan | undefined;
  readonly sinks: readonly SinkConfig[];
  /** Directory of the per-sink on-disk spools. */
  readonly spoolDir: string;
  /** Lower-case query parameter names whose values are replaced by [REDACTED] (built-ins + `redact:`). */
  readonly redact: readonly string[];
  /** Stable text of this config: a reload compares it to decide whether sinks changed. */
  readonly fingerprint: string;
}

/** Query parameter names whose values never reach an event (matched as substrings, lower-case). */
export const SECRET_NAMES: readonly string[] = ['key', 'token', 'secret', 'password', 'passwd', 'pwd', 'auth', 'session', 'signature', 'sig', 'credential', 'cookie', 'code'];

export function compileAudit(doc: PolicyDocument, cx: CompileContext): AuditPlan | undefined {
  const spec = doc.audit;
  if (spec === undefined) return undefined;
  const sinks: SinkConfig[] = [];
  const names = new Set<string>();
  const unique = (base: string): string => {
    let name = base;
    for (let i = 2; names.has(name); i++) name = `${base}-${i}`;
    names.add(name);
    return name;
  };
  (spec.sinks ?? []).forEach((s, i) => {
    if ('stdout' in s) sinks.push({ kind: 'stdout', name: unique('stdout') });
    else if ('file' in s) {
      const f = s.file;
      sinks.push({
        kind: 'file',
        name: unique('file'),
        path: policyRelative(cx, ['audit', 'sinks', i, 'file', 'path'], f.path),
        rotateBytes: f.rotate ? parseSize(f.rotate) : 0,
        retainMs: f.retain ? parseDuration(f.retain) : 0,
        fsync: f.fsync ?? 'batch',
      });
    } else if ('redisStream' in s) {
      const url = s.redisStream.url ?? doc.store?.url;
      if (url === undefined) cx.error(['audit', 'sinks', i, 'redisStream'], 'redisStream needs url (or store.url)');
      else {
        const target = parseRedisUrl(url);
        if (!('problem' in target)) sinks.push({ kind: 'redisStream', name: unique('redisStream'), url, key: s.redisStream.key, maxLen: s.redisStream.maxLen ?? 1_000_000 });
        // A problem with store.url itself is reported once, at store.url.
        else if (s.redisStream.url !== undefined) cx.error(['audit', 'sinks', i, 'redisStream', 'url'], target.problem);
      }
    } else {
      sinks.push({ kind: 'webhook', name: unique('webhook'), url: s.webhook.url, secret: s.webhook.secret, batch: s.webhook.batch ?? 500 });
    }
  });
  if (sinks.length === 0) cx.warn(['audit', 'sinks'], 'audit has no sinks: events are recorded nowhere');
  const redact = [...SECRET_NAMES, ...(spec.redact ?? []).map((r) => r.toLowerCase())];
  // Default spool: beside the first audit file (same disk, same permissions), else the working dir.
  const firstFile = sinks.find((s) => s.kind === 'file');
  const spoolDir = spec.spool !== undefined ? policyRelative(cx, ['audit', 'spool'], spec.spool) : path.resolve(firstFile?.kind === 'file' ? path.dirname(firstFile.path) : '.', '.portcullis-spool');
  const chain = spec.chain ?? false;
  const checkpoint = compileCheckpoint(spec.checkpoint, chain, cx);
  // The key id, not the key, stands for it in the fingerprint.
  const fingerprint = JSON.stringify({ chain, sinks, spoolDir, redact, checkpoint: checkpoint && { ...checkpoint, key: checkpoint.keyId } });
  return { chain, checkpoint, sinks, spoolDir, redact, fingerprint };
}

/**
 * A path the policy wrote, resolved like a `file:` value: against the directory of the policy file
 * that sets it (in a policy directory, each file's own), never the working directory.
 */
function policyRelative(cx: CompileContext, at: (string | number)[], value: string): string {
  return path.resolve(path.dirname(cx.position(at).file), value);
}

/** Checkpoints below this interval would be most of the trail. */
const MIN_CHECKPOINT_MS = 100;

function compileCheckpoint(spec: AuditSpec['checkpoint'], chain: boolean, cx: CompileContext): CheckpointPlan | undefined {
  if (spec === undefined) return undefined;
  if (!chain) {
    cx.errorAtKey(['audit', 'checkpoint'], 'checkpoints sign the head of the hash chain: set audit.chain: true');
    return undefined;
  }
  const intervalMs = spec.interval === undefined ? 10_000 : parseDuration(spec.interval);
  if (intervalMs < MIN_CHECKPOINT_MS) cx.error(['audit', 'checkpoint', 'interval'], `a checkpoint interval of at least ${MIN_CHECKPOINT_MS}ms is needed`);
  let signer: CheckpointSigner;
  try {
    signer = new CheckpointSigner(spec.key, spec.algorithm);
  } catch (err) {
    cx.error(['audit', 'checkpoint', 'key'], (err as Error).message);
    return undefined;
  }
  return { key: spec.key, alg: signer.alg, keyId: signer.keyId, intervalMs, events: spec.events ?? 0 };
}
