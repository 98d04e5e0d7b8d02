// Batched NDJSON POST. Signature: `X-Portcullis-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256
// over "<t>.<body>">` so receivers can reject replays by age. Retries with exponential backoff and
// full jitter; a 429 waits its Retry-After. After the attempts run out the batch is rejected and the
// dispatcher spools it.
import { createHmac } from 'node:crypto';
import { request } from 'undici';
import { type AuditSink, PartialWriteError } from '../sink.js';

export interface WebhookSinkOptions {
  readonly name?: string;
  readonly url: string;
  readonly secret?: string | undefined;
  readonly batch?: number;
  readonly attempts?: number;
  readonly baseDelayMs?: number;
  readonly timeoutMs?: number;
}

export function signature(secret: string, t: number, body: string): string {
  return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class WebhookSink implements AuditSink {
  readonly name: string;
  readonly #o: WebhookSinkOptions;

  constructor(o: WebhookSinkOptions) {
    this.#o = o;
    this.name = o.name ?? 'webhook';
  }

  async write(batch: readonly string[]): Promise<void> {
    const size = this.#o.batch ?? 500;
    for (let i = 0; i < batch.length; i += size) {
      try {
        await this.#post(`${batch.slice(i, i + size).join('\n')}\n`);
      } catch (err) {
        throw i === 0 ? err : new PartialWriteError(i, err);
      }
    }
  }

  async #post(body: string): Promise<void> {
    const attempts = this.#o.attempts ?? 4;
    const base = this.#o.baseDelayMs ?? 100;
    let last: unknown;
    for (let n = 0; n < attempts; n++) {
      let wait = Math.random() * base * 2 ** n;
      try {
        const t = Math.floor(Date.now() / 1000);
        const headers: Record<string, string> = { 'content-type': 'application/x-ndjson' };
        if (this.#o.secret) headers['x-portcullis-signature'] = signature(this.#o.secret, t, body);
        const res = await request(this.#o.url, {
          method: 'POST',
          body,
          headers,
          headersTimeout: this.#o.timeoutMs ?? 10_000,
          bodyTimeout: this.#o.timeoutMs ?? 10_000,
        });
        await res.body.dump();
        if (res.statusCode >= 200 && res.statusCode < 300) return;
        last = new Error(`webhook answered ${res.statusCode}`);
        if (res.statusCode === 429) {
          const ra = Number(res.headers['retry-after']);
          if (Number.isFinite(ra) && ra >= 0) wait = Math.min(ra * 1000, 30_000);
        } else if (res.statusCode < 500 && res.statusCode !== 408) {
          throw last; // a 4xx other than 408/429 will not get better by retrying now; spool it
        }
      } catch (err) {
        last = err;
        if ((err as Error).message?.startsWith('webhook answered 4')) throw err;
      }
      if (n < attempts - 1) await sleep(wait);
    }
    throw last instanceof Error ? last : new Error(String(last));
  }

  async close(): Promise<void> {}
}
