// Which store a policy asks for: Redis when store.url is set, else the embedded memory store.
import type { Logger } from 'pino';
import type { LimitsPlan } from './compile.js';
import { MemoryStore } from './memory-store.js';
import { RedisStore } from './redis-store.js';
import type { StoreHolder } from './store.js';

export interface CreatedStore extends StoreHolder {
  /** store.url it was built from (undefined: memory). */
  readonly url: string | undefined;
}

export function createStore(plan: LimitsPlan | undefined, logger: Logger): CreatedStore {
  const url = plan?.storeUrl;
  if (url === undefined) return { store: new MemoryStore(), url: undefined };
  logger.info({ store: url.slice(0, Math.max(0, url.indexOf(':'))), timeoutMs: plan!.timeoutMs }, 'limits store: redis');
  return { store: new RedisStore({ url, timeoutMs: plan!.timeoutMs }), url };
}
