// XADD to a Redis stream, one pipeline per batch, approximate MAXLEN trimming. Fields: `id` (the
// event id, for de-duplication) and `event` (the NDJSON line). While Redis is unreachable commands
// fail at once (no offline queue), so the dispatcher spools instead of buffering in ioredis.
import type { Cluster, Redis } from 'ioredis';
import { createRedisClient } from '../../redis-client.js';
import type { AuditSink } from '../sink.js';

export interface RedisStreamSinkOptions {
  readonly name?: string;
  readonly url: string;
  readonly key: string;
  readonly maxLen?: number;
}

function eventIdOf(line: string): string {
  const at = line.indexOf('"id":"');
  return at < 0 ? '' : line.slice(at + 6, line.indexOf('"', at + 6));
}

export class RedisStreamSink implements AuditSink {
  readonly name: string;
  readonly #redis: Redis | Cluster;
  readonly #key: string;
  readonly #maxLen: string;

  constructor(o: RedisStreamSinkOptions) {
    this.name = o.name ?? 'redisStream';
    this.#key = o.key;
    this.#maxLen = String(o.maxLen ?? 1_000_000);
    this.#redis = createRedisClient(o.url, {
      redis: {
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        retryStrategy: (n) => Math.min(n * 100, 1000),
      },
    });
    this.#redis.on('error', () => undefined);
  }

  async write(batch: readonly string[]): Promise<void> {
    if (batch.length === 0) return;
    if (this.#redis.status !== 'ready') await this.#ready(1000);
    const p = this.#redis.pipeline();
    for (const line of batch) p.xadd(this.#key, 'MAXLEN', '~', this.#maxLen, '*', 'id', eventIdOf(line), 'event', line);
    const results = await p.exec();
    if (results === null) throw new Error('redis pipeline aborted');
    for (const [err] of results) if (err) throw err;
  }

  /** Waits briefly for a (re)connection; a down Redis rejects fast so the batch is spooled. */
  #ready(ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.#redis.off('ready', done);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#redis.off('ready', done);
        reject(new Error(`redis not connected (${this.#redis.status})`));
      }, ms);
      this.#redis.on('ready', done);
    });
  }

  async close(): Promise<void> {
    this.#redis.disconnect();
  }
}
