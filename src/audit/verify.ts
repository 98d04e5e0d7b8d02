// Chain verification over one or more files (rotated segments, oldest first). Reports the first
// broken link with its file, line (1-based) and kind:
//   edited    – the event's content no longer matches its hash (or its link was forged)
//   deleted   – events are missing before this line (seq jumps ahead, prev names a vanished event)
//   inserted  – this line does not belong here (a duplicate, or a forged line the next one skips)
//   reordered – the event belongs to the chain, but at another position
// and, past the chain itself (a chain cannot show that its end was cut off):
//   signature – a checkpoint's signature does not verify with the auditor's key (--key)
//   unsigned  – a key was given but no checkpoint signs anything
//   truncated – the files end before a head the auditor recorded (--expect-head), or a trail from a
//               writer known to have stopped cleanly (--closed) lacks its closing checkpoint
//   mismatch  – the event at the recorded head's seq is not the recorded one
import { readFileSync } from 'node:fs';
import { canonicalWithoutHash, chainHash } from './chain.js';
import { type CheckpointVerifier, checkpointMessage } from './checkpoint.js';

export type BreakKind = 'edited' | 'deleted' | 'inserted' | 'reordered' | 'unchained' | 'malformed' | 'signature' | 'unsigned' | 'truncated' | 'mismatch';

/** Kinds that mean the chain itself is broken (the others are about checkpoints and heads). */
export const CHAIN_BREAKS: ReadonlySet<BreakKind> = new Set(['edited', 'deleted', 'inserted', 'reordered', 'unchained', 'malformed']);

export interface VerifyOptions {
  /** Verifies checkpoint signatures; with it, a trail with no checkpoint fails. */
  readonly key?: CheckpointVerifier;
  /** A head recorded earlier (admin endpoint, log line): the files must reach it and agree. */
  readonly expectHead?: { readonly seq: number; readonly hash: string };
  /** The writer stopped cleanly: a trail that does not end with its closing checkpoint fails. */
  readonly closed?: boolean;
}

interface CheckpointSummary {
  readonly count: number;
  /** True when a key was given and every checkpoint's signature verified. */
  readonly verified: boolean;
  readonly last?: { readonly file: string; readonly line: number; readonly seq: number; readonly time: string; readonly reason: string; readonly keyId: string };
  /** Events after the last checkpoint: written, chained, but not covered by a signature. */
  readonly after: number;
  /** The last event is a shutdown checkpoint. */
  readonly closing: boolean;
}

export interface VerifyResult {
  readonly ok: boolean;
  readonly events: number;
  readonly first?: { prev: string; seq: number };
  readonly head?: { hash: string; seq: number };
  readonly broken?: { file: string; line: number; kind: BreakKind; message: string };
  readonly checkpoints?: CheckpointSummary;
  /** Findings that do not fail verification (e.g. no closing checkpoint without --closed). */
  readonly warnings?: readonly string[];
}

/** `SEQ:HASH` as the admin endpoint and the checkpoint log line print it. */
export function parseExpectHead(text: string): { seq: number; hash: string } | undefined {
  const m = /^(\d+):([0-9a-f]{64})$/.exec(text.trim());
  return m ? { seq: Number(m[1]), hash: m[2]! } : undefined;
}

interface CheckpointDetailLike {
  instance?: unknown;
  seq?: unknown;
  hash?: unknown;
  alg?: unknown;
  keyId?: unknown;
  reason?: unknown;
  sig?: unknown;
}

interface Entry {
  readonly file: string;
  readonly line: number;
  readonly event?: Record<string, unknown>;
  readonly chain?: { instance: string; seq: number; prev: string; hash: string };
  readonly valid: boolean;
}

function load(files: readonly string[]): Entry[] {
  const out: Entry[] = [];
  for (const file of files) {
    const lines = readFileSync(file, 'utf8').split('\n');
    lines.forEach((text, i) => {
      if (text.trim() === '') return;
      let event: Record<string, unknown> | undefined;
      try {
        event = JSON.parse(text) as Record<string, unknown>;
      } catch {
        out.push({ file, line: i + 1, valid: false });
        return;
      }
      const chain = event.chain as Entry['chain'];
      if (!chain || typeof chain.hash !== 'string' || typeof chain.prev !== 'string') {
        out.push({ file, line: i + 1, event, valid: false });
        return;
      }
      out.push({ file, line: i + 1, event, chain, valid: chainHash(chain.prev, canonicalWithoutHash(event)) === chain.hash });
    });
  }
  return out;
}

export function verifyFiles(files: readonly string[], o: VerifyOptions = {}): VerifyResult {
  const entries = load(files);
  const index = new Map<string, number>();
  entries.forEach((e, i) => {
    if (e.chain && !index.has(e.chain.hash)) index.set(e.chain.hash, i);
  });
  const fail = (e: Entry, kind: BreakKind, message: string, events: number): VerifyResult => ({
    ok: false,
    events,
    broken: { file: e.file, line: e.line, kind, message },
  });
  let last: Entry | undefined;
  let beforeLast: Entry | undefined;
  const checkpoints: number[] = [];
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    if (!e.event) return fail(e, 'malformed', 'not a JSON line', i);
    if (!e.chain) return fail(e, 'unchained', 'event has no chain (written with chain: false?)', i);
    if (!e.valid) return fail(e, 'edited', 'content does not match its hash', i);
    const c = e.chain;
    if (e.event.type === 'audit.checkpoint') {
      const problem = checkCheckpoint(e, o.key);
      if (problem) return fail(e, problem.kind, problem.message, i);
      checkpoints.push(i);
    }
    if (last === undefined) {
      last = e;
      continue;
    }
    const lc = last.chain!;
    if (c.prev === lc.hash && c.seq === lc.seq + 1) {
      beforeLast = last;
      last = e;
      continue;
    }
    if (index.get(c.hash)! < i) return fail(e, 'inserted', `duplicate of ${entries[index.get(c.hash)!]!.file}:${entries[index.get(c.hash)!]!.line}`, i);
    if (beforeLast && c.prev === beforeLast.chain!.hash) return fail(last, 'inserted', 'the next event links past this one', i - 1);
    const next = entries[i + 1];
    const prevAt = index.get(c.prev);
    if (next?.chain && next.chain.prev === lc.hash) {
      if (prevAt !== undefined && prevAt > i) return fail(e, 'reordered', `event seq ${c.seq} belongs after line ${entries[prevAt]!.line}`, i);
      return fail(e, 'inserted', 'the next event links past this one', i);
    }
    if (prevAt !== undefined && prevAt > i) return fail(e, 'reordered', `event seq ${c.seq} belongs after line ${entries[prevAt]!.line}`, i);
    if (c.seq > lc.seq + 1) return fail(e, 'deleted', `${c.seq - lc.seq - 1} event(s) missing before this line (seq ${lc.seq + 1}..${c.seq - 1})`, i);
    if (prevAt !== undefined) return fail(e, 'reordered', `event seq ${c.seq} belongs after line ${entries[prevAt]!.line}`, i);
    return fail(e, 'edited', 'link to the previous event was altered', i);
  }
  const first = entries[0]?.chain;
  const lastAt = checkpoints.at(-1);
  const cpEntry = lastAt === undefined ? undefined : entries[lastAt]!;
  const cpDetail = cpEntry?.event?.detail as CheckpointDetailLike | undefined;
  const summary: CheckpointSummary = {
    count: checkpoints.length,
    verified: o.key !== undefined && checkpoints.length > 0,
    ...(cpEntry && cpDetail
      ? { last: { file: cpEntry.file, line: cpEntry.line, seq: cpEntry.chain!.seq, time: String(cpEntry.event!.time), reason: String(cpDetail.reason), keyId: String(cpDetail.keyId) } }
      : {}),
    after: lastAt === undefined ? entries.length : entries.length - 1 - lastAt,
    closing: lastAt !== undefined && lastAt === entries.length - 1 && cpDetail?.reason === 'shutdown',
  };
  const result: VerifyResult = {
    ok: true,
    events: entries.length,
    ...(first ? { first: { prev: first.prev, seq: first.seq } } : {}),
    ...(last?.chain ? { head: { hash: last.chain.hash, seq: last.chain.seq } } : {}),
    checkpoints: summary,
  };
  const end = entries.at(-1);
  const broken = (kind: BreakKind, message: string, at: Entry | undefined = end): VerifyResult => ({
    ...result,
    ok: false,
    broken: { file: at?.file ?? files[0] ?? '-', line: at?.line ?? 0, kind, message },
  });
  const expect = o.expectHead;
  if (expect) {
    const firstSeq = first?.seq;
    const lastSeq = last?.chain?.seq;
    if (firstSeq === undefined || lastSeq === undefined) return broken('truncated', `the files hold no event, but the expected head is seq ${expect.seq}`);
    if (expect.seq > lastSeq) {
      return broken('truncated', `the files end at seq ${lastSeq}, before the expected head seq ${expect.seq}: at least ${expect.seq - lastSeq} event(s) are missing from the end`);
    }
    if (expect.seq < firstSeq) return broken('mismatch', `the files start at seq ${firstSeq}, after the expected head seq ${expect.seq}: pass the older segments too`, entries[0]);
    // The chain verified, so seqs run consecutively from the first entry.
    const at = entries[expect.seq - firstSeq]!;
    if (at.chain!.hash !== expect.hash) return broken('mismatch', `the event at seq ${expect.seq} has hash ${at.chain!.hash}, not the expected ${expect.hash}`, at);
  }
  if (o.key && checkpoints.length === 0) return broken('unsigned', 'no checkpoint in these files: nothing is signed (is audit.checkpoint configured?)');
  const warnings: string[] = [];
  if ((checkpoints.length > 0 || o.key || o.closed) && !summary.closing) {
    const what =
      lastAt === undefined
        ? 'no checkpoint at all'
        : summary.after === 0
          ? `the last checkpoint (line ${cpEntry!.line}) was written ${WRITTEN[String(cpDetail?.reason)] ?? 'at an interval'}, not at shutdown`
          : `${summary.after} event(s) after the last checkpoint (${cpEntry!.file}:${cpEntry!.line}) are not covered by a signature`;
    const message = `no closing checkpoint: ${what}; the writer is still running, crashed, or the end of the trail was cut off`;
    if (o.closed) return broken('truncated', message);
    warnings.push(message);
  }
  return warnings.length > 0 ? { ...result, warnings } : result;
}

/** When a checkpoint of each non-closing reason is written, for the "no closing checkpoint" warning. */
const WRITTEN: Readonly<Record<string, string>> = { interval: 'at an interval', events: 'after its event count', reload: 'when a reload changed the audit section' };

function checkCheckpoint(e: Entry, key: CheckpointVerifier | undefined): { kind: BreakKind; message: string } | undefined {
  const c = e.chain!;
  const d = (e.event!.detail ?? {}) as CheckpointDetailLike;
  if (d.instance !== c.instance || d.seq !== c.seq - 1 || d.hash !== c.prev) {
    return { kind: 'edited', message: 'the checkpoint names a head other than the event before it' };
  }
  if (key === undefined) return undefined;
  if (d.alg !== key.alg) return { kind: 'signature', message: `the checkpoint is signed with ${String(d.alg)}, the given key is for ${key.alg}` };
  if (d.keyId !== key.keyId) return { kind: 'signature', message: `the checkpoint was signed with key ${String(d.keyId)}, not the given key ${key.keyId}` };
  const message = checkpointMessage(c.instance, c.seq - 1, c.prev, String(e.event!.time), String(d.reason));
  if (typeof d.sig !== 'string' || !key.verify(message, d.sig)) return { kind: 'signature', message: 'the checkpoint signature does not verify with the given key' };
  return undefined;
}
