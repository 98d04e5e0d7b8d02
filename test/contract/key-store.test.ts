import { afterAll } from 'vitest';
import { MemoryKeyStore, RedisKeyStore } from '../../src/authn/key-store.js';
import { redisUrl } from '../helpers/redis.js';
import { keyStoreContract } from './key-store.contract.js';

const memory = new MemoryKeyStore();
keyStoreContract('memory', async () => ({ store: memory, replica: memory }));

let redis: { store: RedisKeyStore; replica: RedisKeyStore } | undefined;
keyStoreContract('redis', async () => (redis ??= { store: new RedisKeyStore(redisUrl()), replica: new RedisKeyStore(redisUrl()) }));

afterAll(async () => {
  if (redis !== undefined) await Promise.all([redis.store.close(), redis.replica.close()]);
});
