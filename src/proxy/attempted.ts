// What a refused request attempted, for its audit event: the method and target of a request the
// HTTP parser or the canonicaliser refused, recovered from what arrived and bounded in length.
// Nothing here escapes characters: the audit encoder (src/audit/pipeline.ts) does that for every
// field of every event, so a field recovered here cannot smuggle a control or bidi character in.
/** Longest attempted target an event records; a longer one is cut and ends in TRUNCATED. */
export const MAX_TARGET = 2048;
export const TRUNCATED = '…';
/** How far before the parser's error position the request line is looked for. */
const LOOK_BACK = 32 * 1024;

export interface AttemptedTarget {
  readonly path: string;
  /** From the first "?", or "" (kept apart so query values named like secrets are redacted). */
  readonly query: string;
}

export interface Attempted extends AttemptedTarget {
  readonly method: string;
}

/** A request target as written, cut to MAX_TARGET characters, split at the first "?". */
export function attemptedTarget(target: string): AttemptedTarget {
  const t = target.length > MAX_TARGET ? target.slice(0, MAX_TARGET) + TRUNCATED : target;
  const q = t.indexOf('?');
  return q < 0 ? { path: t, query: '' } : { path: t.slice(0, q), query: t.slice(q) };
}

/**
 * The request line of the request a parser error is about, read from the bytes the parser was
 * given (`err.rawPacket`, which may also hold earlier pipelined requests) around the error position
 * (`err.bytesParsed`). Undefined when that request's line is not in these bytes (it arrived in an
 * earlier read). The method is whatever token the client sent, so a refused unknown method is
 * recorded as sent.
 */
export function attemptedFromPacket(packet: Buffer | undefined, errorAt: number | undefined): Attempted | undefined {
  if (packet === undefined || packet.length === 0) return undefined;
  const at = Math.max(0, Math.min(errorAt ?? packet.length, packet.length));
  const from = Math.max(0, at - LOOK_BACK);
  // latin1: one character per byte, so offsets match and no byte fails to decode.
  const text = packet.toString('latin1', from, Math.min(packet.length, at + MAX_TARGET + 64));
  // An error found at a line start (the end of a head) is about the line before it, not the next one.
  let pos = at - from;
  if (pos > 0 && (pos === text.length || text.charCodeAt(pos - 1) === 0x0a)) pos--;
  // Walk back line by line. Blank lines right at the error end the head in question; a blank line
  // after a header line ends an earlier message, whose request line is not this request's.
  let seenHeader = false;
  for (;;) {
    const start = pos === 0 ? 0 : text.lastIndexOf('\n', pos - 1) + 1;
    let stop = text.indexOf('\n', start);
    if (stop < 0) stop = text.length;
    const line = text.slice(start, stop).replace(/\r$/, '');
    if (line.length === 0) {
      if (seenHeader) return undefined;
    } else {
      // Only a message's first line is a request line: at the start of the bytes or after a blank line.
      const first = start === 0 || (start >= 2 && text.charCodeAt(start - 2) === 0x0a) || (start >= 3 && text.slice(start - 3, start) === '\n\r\n');
      const parsed = first ? requestLine(line) : undefined;
      if (parsed !== undefined) return parsed;
      seenHeader = true;
    }
    if (start === 0) return undefined;
    pos = start - 1;
  }
}

// A method is a token (RFC 9110 §9.1); a header line has a ":" straight after its name instead.
const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}) /;

function requestLine(line: string): Attempted | undefined {
  const m = REQUEST_LINE.exec(line);
  if (m === null) return undefined;
  let target = line.slice(m[0].length);
  const version = target.lastIndexOf(' HTTP/');
  if (version >= 0) target = target.slice(0, version);
  return { method: m[1]!, ...attemptedTarget(target) };
}
