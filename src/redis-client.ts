// The one place a Redis client is made from a URL: the limits store, the dynamic key store and the
// redisStream audit sink all accept a single server, a Sentinel group or a Cluster alike.
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { parseRedisUrl } from './redis-url.js';

export interface RedisClientOptions {
  /** Per-connection settings (retry, timeouts, queueing); for a cluster, every node's. */
  readonly redis: RedisOptions;
  /** Custom commands auto-pipelining must not batch on a cluster (see RedisStore). */
  readonly clusterUnpipelined?: readonly string[];
}

/**
 * `redis://`, `rediss://` (TLS), `redis+sentinel://host:port,host:port/mastername` and
 * `redis+cluster://host:port,host:port`. Throws on a URL parseRedisUrl refuses: the policy
 * compiler reports those with their position before anything connects.
 */
export function createRedisClient(url: string, options: RedisClientOptions): Redis | Cluster {
  const target = parseRedisUrl(url);
  if ('problem' in target) throw new Error(`redis URL: ${target.problem}`);
  if (target.kind === 'cluster') {
    const { username, password } = target;
    return new Cluster(
      target.hosts.map((h) => ({ ...h })),
      {
        enableAutoPipelining: options.redis.enableAutoPipelining ?? false,
        enableOfflineQueue: options.redis.enableOfflineQueue ?? true,
        autoPipeliningIgnoredCommands: [...(options.clusterUnpipelined ?? [])],
        redisOptions: { ...options.redis, username, password },
      },
    );
  }
  if (target.kind === 'sentinel') {
    const { username, password, name } = target;
    return new Redis({ ...options.redis, sentinels: target.hosts.map((h) => ({ ...h })), name, username, password });
  }
  return new Redis(url, options.redis);
}
