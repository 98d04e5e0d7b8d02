// No raw DEL, C1, line-separator or bidi formatting character in a written line: the one escape
// keeps the parsed value and leaves every other character as it was.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { canonicalWithoutHash, chainHash, GENESIS } from '../../../src/audit/chain.js';
import { AuditPipeline } from '../../../src/audit/pipeline.js';
import type { AuditSink } from '../../../src/audit/sink.js';
import { createLogger } from '../../../src/observability/logger.js';
import { safeJsonLine } from '../../../src/observability/safe-text.js';
import { requestRecord } from '../../helpers/audit.js';

const UNSAFE = ['\u007f', '\u0085', '\u009b', '\u061c', '\u200e', '\u200f', '\u2028', '\u2029', '\u202a', '\u202b', '\u202c', '\u202d', '\u202e', '\u2066', '\u2067', '\u2068', '\u2069'];
// biome-ignore lint/suspicious/noControlCharactersInRegex: the test looks for raw control characters
const RAW = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

describe('safe lines', () => {
  it('escapes each unsafe character as \\uXXXX and parses back to the same value', () => {
    const value = { path: `/a${UNSAFE.join('')}b`, ok: 'é 漢字 😀 "q"' };
    const line = safeJsonLine(JSON.stringify(value));
    expect(line).not.toMatch(RAW);
    expect(line).toContain('\\u202e');
    expect(JSON.parse(line)).toEqual(value);
  });

  it('returns a line with nothing to escape unchanged', () => {
    const line = JSON.stringify({ path: '/v1/é/漢字', n: 1 });
    expect(safeJsonLine(line)).toBe(line);
  });

  it('keeps them out of log lines', () => {
    let text = '';
    const stream = new Writable({
      write(chunk, _enc, cb) {
        text += String(chunk);
        cb();
      },
    });
    createLogger({ level: 'info', destination: stream }).info({ target: `/x${UNSAFE.join('')}\u0001` }, `msg\u202e`);
    expect(text.trimEnd()).not.toMatch(RAW);
    expect(JSON.parse(text).target).toBe(`/x${UNSAFE.join('')}\u0001`);
  });

  it('keeps them out of chained audit lines, which still verify', async () => {
    const lines: string[] = [];
    const sink: AuditSink = { name: 'memory', write: async (b) => void lines.push(...b), close: async () => undefined };
    const pipeline = new AuditPipeline({ chain: true, sinks: [], spoolDir: '', redact: [], fingerprint: '' }, { sinks: [sink] });
    pipeline.write([requestRecord(1, { path: `/files/\u202egpj.exe${UNSAFE.join('')}`, subject: 'mallory\u2066' })]);
    await pipeline.close();
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toMatch(RAW);
    const event = JSON.parse(lines[0]!) as { chain: { hash: string; prev: string }; request: { path: string } };
    expect(event.request.path).toBe(`/files/\u202egpj.exe${UNSAFE.join('')}`);
    expect(event.chain.prev).toBe(GENESIS);
    expect(chainHash(event.chain.prev, canonicalWithoutHash(event as unknown as Record<string, unknown>))).toBe(event.chain.hash);
  });
});
