// Real Redis Cluster and Redis Sentinel deployments for tests, built from redis-server processes on
// free ports: the store's `redis+cluster://` and `redis+sentinel://` URLs are exercised against the
// servers they name, never a mock.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { inject } from 'vitest';
import { freePort, PrivateRedis, untilPong } from './redis.js';

const SLOTS = 16384;

async function until(what: string, ms: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} within ${ms} ms`);
}

/** Three masters sharing the 16384 slots, no replicas: the smallest cluster Redis accepts. */
export class RedisCluster {
  readonly nodes: readonly PrivateRedis[];
  readonly #dir: string;

  private constructor(nodes: PrivateRedis[], dir: string) {
    this.nodes = nodes;
    this.#dir = dir;
  }

  static async start(size = 3): Promise<RedisCluster> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-cluster-'));
    const nodes: PrivateRedis[] = [];
    for (let i = 0; i < size; i++) {
      const port = await freePort();
      nodes.push(new PrivateRedis(port, ['--cluster-enabled', 'yes', '--cluster-config-file', path.join(dir, `nodes-${port}.conf`), '--dir', dir]));
    }
    const cluster = new RedisCluster(nodes, dir);
    try {
      await Promise.all(nodes.map((n) => n.start()));
      const clients = nodes.map((n) => new Redis(n.url, { lazyConnect: true }));
      try {
        // ADDSLOTS with every slot listed (not ADDSLOTSRANGE, which needs Redis 7).
        for (let i = 0; i < size; i++) {
          const from = Math.floor((SLOTS * i) / size);
          const to = Math.floor((SLOTS * (i + 1)) / size);
          await clients[i]!.call('CLUSTER', 'ADDSLOTS', ...Array.from({ length: to - from }, (_, k) => String(from + k)));
        }
        for (let i = 1; i < size; i++) await clients[0]!.call('CLUSTER', 'MEET', '127.0.0.1', String(nodes[i]!.port));
        await until('the cluster did not reach cluster_state:ok', 15_000, async () => {
          const infos = await Promise.all(clients.map((c) => c.call('CLUSTER', 'INFO') as Promise<string>));
          return infos.every((info) => info.includes('cluster_state:ok') && info.includes(`cluster_known_nodes:${size}`));
        });
      } finally {
        for (const c of clients) c.disconnect();
      }
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** The store's URL for this cluster (any node is a seed; all are named). */
  get url(): string {
    return `redis+cluster://${this.nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}`;
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop()));
    fs.rmSync(this.#dir, { recursive: true, force: true });
  }
}

/** A master, one replica and one Sentinel (quorum 1) watching them as `mymaster`. */
export class RedisSentinel {
  readonly master: PrivateRedis;
  readonly replica: PrivateRedis;
  readonly port: number;
  readonly #dir: string;
  #sentinel: ChildProcess | undefined;

  private constructor(master: PrivateRedis, replica: PrivateRedis, port: number, dir: string) {
    this.master = master;
    this.replica = replica;
    this.port = port;
    this.#dir = dir;
  }

  static async start(): Promise<RedisSentinel> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-sentinel-'));
    // Their own directory: a replica's full sync writes an RDB file.
    const master = await PrivateRedis.start(['--dir', dir]);
    const replica = await PrivateRedis.start(['--dir', dir, '--replicaof', '127.0.0.1', String(master.port)]);
    const s = new RedisSentinel(master, replica, await freePort(), dir);
    try {
      // Sentinel rewrites its configuration file, so it gets one of its own.
      const conf = path.join(dir, 'sentinel.conf');
      fs.writeFileSync(
        conf,
        [
          `port ${s.port}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          `sentinel monitor mymaster 127.0.0.1 ${master.port} 1`,
          'sentinel down-after-milliseconds mymaster 500',
          'sentinel failover-timeout mymaster 5000',
          '',
        ].join('\n'),
      );
      const bin = inject('redisServerBin');
      if (!bin) throw new Error('redis-server is not installed: sudo apt-get install -y redis-server');
      s.#sentinel = spawn(bin, [conf, '--sentinel'], { stdio: 'ignore' });
      await untilPong(s.port, `redis sentinel on ${s.port} did not start`);
      // A failover needs a replica the Sentinel knows of, fully in sync.
      const probe = new Redis({ port: s.port, host: '127.0.0.1', lazyConnect: true });
      try {
        await until('the sentinel did not see the replica in sync', 20_000, async () => {
          const replicas = (await probe.call('SENTINEL', 'REPLICAS', 'mymaster')) as string[][];
          return replicas.some((r) => {
            const fields = new Map<string, string>();
            for (let i = 0; i < r.length; i += 2) fields.set(r[i]!, r[i + 1]!);
            return fields.get('port') === String(replica.port) && fields.get('master-link-status') === 'ok' && !fields.get('flags')!.includes('disconnected');
          });
        });
      } finally {
        probe.disconnect();
      }
    } catch (err) {
      await s.stop();
      throw err;
    }
    return s;
  }

  /** The store's URL: the Sentinel and the master name it watches. */
  get url(): string {
    return `redis+sentinel://127.0.0.1:${this.port}/mymaster`;
  }

  /** The address the Sentinel names as master right now. */
  async masterPort(): Promise<number> {
    const probe = new Redis({ port: this.port, host: '127.0.0.1', lazyConnect: true });
    try {
      const [, port] = (await probe.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', 'mymaster')) as [string, string];
      return Number(port);
    } finally {
      probe.disconnect();
    }
  }

  async stop(): Promise<void> {
    const s = this.#sentinel;
    if (s !== undefined && s.exitCode === null && s.signalCode === null) {
      await new Promise<void>((resolve) => {
        s.once('exit', () => resolve());
        s.kill('SIGKILL');
      });
    }
    await Promise.all([this.master.stop(), this.replica.stop()]);
    fs.rmSync(this.#dir, { recursive: true, force: true });
  }
}
