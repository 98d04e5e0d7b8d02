// What an upstream says one response consumed, read while the response streams through and never
// buffered whole: a header or trailer (removed before the client sees it), or the `usage` fields of
// an OpenAI- or Anthropic-style body. A JSON body is read from a bounded window of its last bytes;
// server-sent events are read line by line as they pass, keeping only the last usage seen. Nothing
// reported is 0 tokens, never 1.
import type { UsagePlan } from '../upstream/usage.js';

/** The JSON body's last bytes kept for its `usage`: providers put it at the end of the object. */
const TAIL_BYTES = 16 * 1024;
/** A server-sent-event line longer than this is skipped (a usage event is a few hundred bytes). */
const MAX_LINE = 64 * 1024;
const USAGE = Buffer.from('"usage"');
const DATA = Buffer.from('data:');
const NL = 10;

enum Body {
  None,
  Json,
  Events,
}

const count = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.min(Math.floor(v), Number.MAX_SAFE_INTEGER) : undefined);

export class UsageMeter {
  readonly #plan: UsagePlan;
  #body = Body.None;
  /** From the header, then the trailer: what the upstream stated outright wins over the body. */
  #stated: number | undefined;
  /** OpenAI's total (or prompt + completion). */
  #total: number | undefined;
  /** Anthropic's input and output, which arrive in different events of one stream. */
  #input: number | undefined;
  #output: number | undefined;
  #tail: Buffer[] = [];
  #tailBytes = 0;
  /** The start of an event line the last chunk cut; undefined between lines. */
  #line: Buffer | undefined;
  /** Inside a line too long to be a usage event: skipped to its end. */
  #skipping = false;

  constructor(plan: UsagePlan) {
    this.#plan = plan;
  }

  /** The upstream's raw response headers without the usage header; notes the body's kind. */
  head(raw: Buffer[]): Buffer[] {
    const name = this.#plan.header;
    let out: Buffer[] | undefined;
    let type = '';
    let encoded = false;
    for (let i = 0; i < raw.length; i += 2) {
      const n = raw[i]!;
      if (n.length === name.length && n.toString('latin1').toLowerCase() === name) {
        this.#stated = parseCount(raw[i + 1]!.toString('latin1'));
        out ??= raw.slice(0, i);
        continue;
      }
      if (n.length === 12 && n.toString('latin1').toLowerCase() === 'content-type') type = raw[i + 1]!.toString('latin1').toLowerCase();
      else if (n.length === 16 && n.toString('latin1').toLowerCase() === 'content-encoding') encoded = raw[i + 1]!.toString('latin1').trim().toLowerCase() !== 'identity';
      out?.push(n, raw[i + 1]!);
    }
    // A compressed body cannot be read in passing: only a header or trailer meters it.
    if (this.#plan.json !== 'off' && !encoded) {
      if (type.startsWith('text/event-stream')) this.#body = Body.Events;
      else if (type.includes('json')) this.#body = Body.Json;
    }
    return out ?? raw;
  }

  data(chunk: Buffer): void {
    if (this.#body === Body.Json) this.#keepTail(chunk);
    else if (this.#body === Body.Events) this.#lines(chunk);
  }

  /** undici's raw trailers ([name, value, …]): the usage trailer, which Portcullis never forwards. */
  trailers(raw: readonly (Buffer | string)[] | null): void {
    if (raw === null) return;
    const name = this.#plan.header;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      if (raw[i]!.toString().toLowerCase() === name) this.#stated = parseCount(raw[i + 1]!.toString());
    }
  }

  /**
   * The tokens reported so far. `ended`: the body arrived whole, so a JSON body's tail is read;
   * a body cut short (client abort, upstream failure) counts what a header or an event already said.
   */
  tokens(ended: boolean): number {
    if (this.#stated !== undefined) return this.#stated;
    if (ended && this.#body === Body.Json) this.#readJsonTail();
    if (this.#total !== undefined) return this.#total;
    if (this.#input !== undefined || this.#output !== undefined) return (this.#input ?? 0) + (this.#output ?? 0);
    return 0;
  }

  #keepTail(chunk: Buffer): void {
    const tail = this.#tail;
    tail.push(chunk);
    this.#tailBytes += chunk.length;
    while (tail.length > 1 && this.#tailBytes - tail[0]!.length >= TAIL_BYTES) this.#tailBytes -= tail.shift()!.length;
  }

  #readJsonTail(): void {
    if (this.#tailBytes === 0) return;
    let buf = this.#tail.length === 1 ? this.#tail[0]! : Buffer.concat(this.#tail);
    if (buf.length > TAIL_BYTES) buf = buf.subarray(buf.length - TAIL_BYTES);
    this.#tail = [];
    this.#tailBytes = 0;
    const at = buf.lastIndexOf(USAGE);
    if (at < 0) return;
    const open = buf.indexOf(0x7b, at + USAGE.length); // '{'
    if (open < 0) return;
    const close = objectEnd(buf, open);
    if (close < 0) return;
    try {
      this.#read(JSON.parse(buf.toString('utf8', open, close + 1)));
    } catch {
      // Not JSON after all: nothing reported.
    }
  }

  #lines(chunk: Buffer): void {
    let from = 0;
    for (;;) {
      const nl = chunk.indexOf(NL, from);
      if (nl < 0) break;
      if (this.#skipping) this.#skipping = false;
      else if (this.#line !== undefined) this.#event(Buffer.concat([this.#line, chunk.subarray(from, nl)]));
      else this.#event(chunk.subarray(from, nl));
      this.#line = undefined;
      from = nl + 1;
    }
    if (from >= chunk.length || this.#skipping) return;
    const rest = chunk.subarray(from);
    const held = this.#line === undefined ? rest.length : this.#line.length + rest.length;
    if (held > MAX_LINE) {
      this.#line = undefined;
      this.#skipping = true;
    } else {
      // Copied: the chunk's memory is the socket's to reuse.
      this.#line = this.#line === undefined ? Buffer.from(rest) : Buffer.concat([this.#line, rest]);
    }
  }

  #event(line: Buffer): void {
    if (line.length <= DATA.length || line.compare(DATA, 0, DATA.length, 0, DATA.length) !== 0) return;
    if (line.indexOf(USAGE, DATA.length) < 0) return;
    let data: unknown;
    try {
      data = JSON.parse(line.toString('utf8', DATA.length));
    } catch {
      return;
    }
    if (data === null || typeof data !== 'object') return;
    const o = data as { usage?: unknown; message?: { usage?: unknown }; response?: { usage?: unknown } };
    // OpenAI chat chunks and Anthropic message_delta carry `usage`, Anthropic message_start
    // `message.usage`, OpenAI Responses' response.completed `response.usage`.
    this.#read(o.usage ?? o.message?.usage ?? o.response?.usage);
  }

  #read(usage: unknown): void {
    if (usage === null || typeof usage !== 'object') return;
    const u = usage as Record<string, unknown>;
    const kind = this.#plan.json;
    if (kind !== 'anthropic') {
      const total = count(u.total_tokens);
      const prompt = count(u.prompt_tokens);
      const completion = count(u.completion_tokens);
      if (total !== undefined) this.#total = total;
      else if (prompt !== undefined || completion !== undefined) this.#total = (prompt ?? 0) + (completion ?? 0);
    }
    if (kind !== 'openai') {
      const input = count(u.input_tokens);
      const output = count(u.output_tokens);
      if (input !== undefined) this.#input = input;
      if (output !== undefined) this.#output = output;
    }
  }
}

/** A header or trailer value: a non-negative integer, else nothing reported. */
function parseCount(value: string): number | undefined {
  const v = value.trim();
  return /^\d{1,15}$/.test(v) ? Number(v) : undefined;
}

/** Index of the `}` closing the object that opens at `open` (strings and escapes respected), or -1. */
function objectEnd(buf: Buffer, open: number): number {
  let depth = 0;
  let inString = false;
  for (let i = open; i < buf.length; i++) {
    const c = buf[i]!;
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped byte
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b) depth++;
    else if (c === 0x7d && --depth === 0) return i;
  }
  return -1;
}
