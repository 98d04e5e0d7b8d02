import { describe, expect, it } from 'vitest';
import { UsageMeter } from '../../../src/proxy/usage-meter.js';
import type { UsagePlan } from '../../../src/upstream/usage.js';

const AUTO: UsagePlan = { header: 'x-usage-tokens', json: 'auto' };
const raw = (...pairs: string[]): Buffer[] => pairs.map((p) => Buffer.from(p, 'latin1'));

/** Feeds `body` in chunks of `size` bytes. */
function feed(m: UsageMeter, body: string, size = 7): void {
  const b = Buffer.from(body);
  for (let i = 0; i < b.length; i += size) m.data(b.subarray(i, i + size));
}

describe('the usage meter', () => {
  it('reads the usage header and removes it from what the client gets', () => {
    const m = new UsageMeter(AUTO);
    const out = m.head(raw('Content-Type', 'text/plain', 'X-Usage-Tokens', '42', 'X-Other', 'y'));
    expect(out.map((b) => b.toString())).toEqual(['Content-Type', 'text/plain', 'X-Other', 'y']);
    expect(m.tokens(true)).toBe(42);
  });

  it('honours a configured header name and prefers a trailer to the header', () => {
    const m = new UsageMeter({ header: 'x-cost', json: 'auto' });
    m.head(raw('x-cost', '5'));
    m.trailers(raw('X-Cost', '9'));
    expect(m.tokens(true)).toBe(9);
  });

  it('charges nothing, not one, when nothing is reported, and ignores a malformed count', () => {
    const plain = new UsageMeter(AUTO);
    plain.head(raw('content-type', 'text/plain'));
    feed(plain, 'hello');
    expect(plain.tokens(true)).toBe(0);
    const bad = new UsageMeter(AUTO);
    bad.head(raw('x-usage-tokens', '-3'));
    expect(bad.tokens(true)).toBe(0);
    const json = new UsageMeter(AUTO);
    json.head(raw('content-type', 'application/json'));
    feed(json, '{"id":"x","choices":[]}');
    expect(json.tokens(true)).toBe(0);
  });

  it('reads OpenAI usage from the end of a JSON body, total or prompt plus completion', () => {
    const total = new UsageMeter(AUTO);
    total.head(raw('content-type', 'application/json; charset=utf-8'));
    feed(total, JSON.stringify({ id: 'c', choices: [{ message: { content: 'say "usage": {no}' } }], usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 } }));
    expect(total.tokens(true)).toBe(15);
    const parts = new UsageMeter(AUTO);
    parts.head(raw('content-type', 'application/json'));
    feed(parts, '{"usage":{"prompt_tokens":3,"completion_tokens":4}}');
    expect(parts.tokens(true)).toBe(7);
  });

  it('reads Anthropic usage from a JSON body: input plus output', () => {
    const m = new UsageMeter(AUTO);
    m.head(raw('content-type', 'application/json'));
    feed(m, JSON.stringify({ type: 'message', content: [{ type: 'text', text: 'hi' }], usage: { input_tokens: 21, output_tokens: 9 } }));
    expect(m.tokens(true)).toBe(30);
  });

  it('keeps only a bounded tail of a large JSON body and still finds the usage at its end', () => {
    const m = new UsageMeter(AUTO);
    m.head(raw('content-type', 'application/json'));
    feed(m, JSON.stringify({ data: 'x'.repeat(1_000_000), usage: { total_tokens: 77 } }), 16_384);
    expect(m.tokens(true)).toBe(77);
  });

  it('a JSON body cut short is charged nothing', () => {
    const m = new UsageMeter(AUTO);
    m.head(raw('content-type', 'application/json'));
    feed(m, '{"usage":{"total_tokens":5}}');
    expect(m.tokens(false)).toBe(0);
  });

  it('reads the last usage of an OpenAI event stream as the events pass', () => {
    const m = new UsageMeter(AUTO);
    m.head(raw('content-type', 'text/event-stream'));
    feed(
      m,
      'data: {"choices":[{"delta":{"content":"a"}}],"usage":null}\n\n' +
        'data: {"choices":[{"delta":{"content":"b"}}],"usage":null}\r\n\r\n' +
        'data: {"choices":[],"usage":{"prompt_tokens":8,"completion_tokens":2,"total_tokens":10}}\n\n' +
        'data: [DONE]\n\n',
      5,
    );
    expect(m.tokens(true)).toBe(10);
  });

  it('adds an Anthropic stream: input from message_start, output from the last message_delta', () => {
    const m = new UsageMeter(AUTO);
    m.head(raw('content-type', 'text/event-stream; charset=utf-8'));
    feed(
      m,
      'event: message_start\ndata: {"type":"message_start","message":{"id":"m","usage":{"input_tokens":25,"output_tokens":1}}}\n\n' +
        'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"hi"}}\n\n' +
        'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":15}}\n\n',
      3,
    );
    // A client that leaves mid-stream is charged what was reported so far.
    expect(m.tokens(false)).toBe(40);
    feed(m, 'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":30}}\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n');
    expect(m.tokens(true)).toBe(55);
  });

  it('an event stream without usage is charged nothing', () => {
    const m = new UsageMeter(AUTO);
    m.head(raw('content-type', 'text/event-stream'));
    feed(m, 'data: {"choices":[{"delta":{"content":"a"}}]}\n\ndata: [DONE]\n\n');
    expect(m.tokens(true)).toBe(0);
  });

  it('reads only the shape it is told to, and no body at all with json: off or a compressed body', () => {
    const body = '{"usage":{"input_tokens":4,"output_tokens":6,"prompt_tokens":100}}';
    const openai = new UsageMeter({ header: 'x-usage-tokens', json: 'openai' });
    openai.head(raw('content-type', 'application/json'));
    feed(openai, body);
    expect(openai.tokens(true)).toBe(100);
    const anthropic = new UsageMeter({ header: 'x-usage-tokens', json: 'anthropic' });
    anthropic.head(raw('content-type', 'application/json'));
    feed(anthropic, body);
    expect(anthropic.tokens(true)).toBe(10);
    const off = new UsageMeter({ header: 'x-usage-tokens', json: 'off' });
    off.head(raw('content-type', 'application/json'));
    feed(off, body);
    expect(off.tokens(true)).toBe(0);
    const gz = new UsageMeter(AUTO);
    gz.head(raw('content-type', 'application/json', 'content-encoding', 'gzip'));
    feed(gz, body);
    expect(gz.tokens(true)).toBe(0);
  });

  it('skips an event line too long to be a usage event without holding it', () => {
    const m = new UsageMeter(AUTO);
    m.head(raw('content-type', 'text/event-stream'));
    feed(m, `data: {"usage":{"total_tokens":999},"pad":"${'p'.repeat(100_000)}"}\n\n`, 8192);
    feed(m, 'data: {"usage":{"total_tokens":3}}\n\n');
    expect(m.tokens(true)).toBe(3);
  });
});
