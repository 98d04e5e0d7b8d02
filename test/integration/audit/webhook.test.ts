import { describe, expect, it } from 'vitest';
import { signature, WebhookSink } from '../../../src/audit/sinks/webhook.js';
import { Receiver } from './receiver.js';

describe('webhook sink', () => {
  it('waits out a 429 for its Retry-After, then delivers', async () => {
    const r = new Receiver('s');
    await r.start();
    r.mode = '429';
    setTimeout(() => (r.mode = 'ok'), 300);
    const sink = new WebhookSink({ url: r.url, secret: 's', attempts: 3, baseDelayMs: 10 });
    const t = Date.now();
    await sink.write(['{"id":"a"}']);
    expect(Date.now() - t).toBeGreaterThanOrEqual(900); // Retry-After: 1, not the 10 ms backoff
    expect(r.lines).toEqual(['{"id":"a"}']);
    await r.stop();
  });

  it('retries a 503 with backoff and gives up (rejects) after its attempts', async () => {
    const r = new Receiver('s');
    await r.start();
    r.mode = '503';
    const sink = new WebhookSink({ url: r.url, secret: 's', attempts: 3, baseDelayMs: 10 });
    await expect(sink.write(['{"id":"b"}'])).rejects.toThrow(/503/);
    expect(r.requests).toBe(3);
    await r.stop();
  });

  it('signs t.body with HMAC-SHA256 in the documented header format', () => {
    expect(signature('secret', 1700000000, 'x\n')).toMatch(/^t=1700000000,v1=[0-9a-f]{64}$/);
    expect(signature('secret', 1700000000, 'x\n')).not.toBe(signature('secret', 1700000001, 'x\n'));
  });
});
