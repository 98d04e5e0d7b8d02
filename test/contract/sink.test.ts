import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { FileSink } from '../../src/audit/sinks/file.js';
import { RedisStreamSink } from '../../src/audit/sinks/redis-stream.js';
import { StdoutSink } from '../../src/audit/sinks/stdout.js';
import { WebhookSink } from '../../src/audit/sinks/webhook.js';
import { freePort, redisUrl } from '../helpers/redis.js';
import { Receiver } from '../integration/audit/receiver.js';
import { sinkContract } from './sink.contract.js';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'portcullis-sink-'));
// Complete lines only: a concurrent reader may see a write half done.
const readLines = (f: string) => {
  const text = readFileSync(f, 'utf8');
  return text
    .slice(0, text.lastIndexOf('\n') + 1)
    .split('\n')
    .filter((l) => l !== '');
};

sinkContract('file', {
  async make() {
    const file = path.join(tmp(), 'sub', 'audit.ndjson');
    return { sink: new FileSink({ path: file, fsync: 'always' }), stored: async () => readLines(file) };
  },
  async unreachable() {
    const dir = tmp();
    writeFileSync(path.join(dir, 'not-a-dir'), '');
    return new FileSink({ path: path.join(dir, 'not-a-dir', 'audit.ndjson') });
  },
});

// The audit worker's file sink: same contract with synchronous I/O.
sinkContract('file (syncIo)', {
  async make() {
    const file = path.join(tmp(), 'sub', 'audit.ndjson');
    return { sink: new FileSink({ path: file, fsync: 'always', syncIo: true }), stored: async () => readLines(file) };
  },
  async unreachable() {
    const dir = tmp();
    writeFileSync(path.join(dir, 'not-a-dir'), '');
    return new FileSink({ path: path.join(dir, 'not-a-dir', 'audit.ndjson'), syncIo: true });
  },
});

sinkContract('stdout', {
  async make() {
    const file = path.join(tmp(), 'stdout.ndjson');
    const fd = openSync(file, 'w');
    return {
      sink: new StdoutSink({ dest: fd }),
      stored: async () => readLines(file),
      cleanup: async () => closeSync(fd),
    };
  },
});

let streams = 0;
sinkContract('redisStream', {
  async make() {
    const key = `audit-contract-${process.pid}-${streams++}`;
    const reader = new Redis(redisUrl());
    return {
      sink: new RedisStreamSink({ url: redisUrl(), key, maxLen: 100_000 }),
      stored: async () => (await reader.xrange(key, '-', '+')).map(([, fields]) => fields[fields.indexOf('event') + 1]!),
      cleanup: async () => void reader.disconnect(),
    };
  },
  async unreachable() {
    return new RedisStreamSink({ url: `redis://127.0.0.1:${await freePort()}`, key: 'x' });
  },
});

sinkContract('webhook', {
  async make() {
    const r = new Receiver('contract-secret');
    await r.start();
    return {
      sink: new WebhookSink({ url: r.url, secret: 'contract-secret', batch: 7 }),
      stored: async () => [...r.lines],
      cleanup: () => r.stop(),
    };
  },
  async unreachable() {
    mkdirSync(tmp(), { recursive: true });
    return new WebhookSink({ url: `http://127.0.0.1:${await freePort()}/`, secret: 's', attempts: 2, baseDelayMs: 10 });
  },
});
