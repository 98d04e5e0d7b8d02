// Chain verification over one or more files (rotated segments, oldest first). Reports the first
// broken link with its file, line (1-based) and kind:
//   edited    – the event's content no longer matches its hash (or its link was forged)
//   deleted   – events are missing before this line (seq jumps ahead, prev names a vanished event)
//   inserted  – this line does not belong here (a duplicate, or a forged line the next one skips)
//   reordered – the event belongs to the chain, but at another position
import { readFileSync } from 'node:fs';
import { canonicalWithoutHash, chainHash } from './chain.js';

export type BreakKind = 'edited' | 'deleted' | 'inserted' | 'reordered' | 'unchained' | 'malformed';

export interface VerifyResult {
  readonly ok: boolean;
  readonly events: number;
  readonly first?: { prev: string; seq: number };
  readonly head?: { hash: string; seq: number };
  readonly broken?: { file: string; line: number; kind: BreakKind; message: string };
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

export function verifyFiles(files: readonly string[]): VerifyResult {
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
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    if (!e.event) return fail(e, 'malformed', 'not a JSON line', i);
    if (!e.chain) return fail(e, 'unchained', 'event has no chain (written with chain: false?)', i);
    if (!e.valid) return fail(e, 'edited', 'content does not match its hash', i);
    const c = e.chain;
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
  return {
    ok: true,
    events: entries.length,
    ...(first ? { first: { prev: first.prev, seq: first.seq } } : {}),
    ...(last?.chain ? { head: { hash: last.chain.hash, seq: last.chain.seq } } : {}),
  };
}
