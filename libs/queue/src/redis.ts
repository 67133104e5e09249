import type { ConnectionOptions } from 'bullmq';
import type { RedisOptions } from 'ioredis';

/**
 * ioredis options from a redis:// URL. BullMQ needs maxRetriesPerRequest null; without the offline queue a command
 * fails at once while Redis is down instead of waiting, so the API answers and the outbox enqueues later.
 */
export function redisOptions(url: string, { offlineQueue }: { offlineQueue: boolean }): RedisOptions {
  const u = new URL(url);
  return {
    host: u.hostname,
    port: Number(u.port || 6379),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    db: u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0,
    maxRetriesPerRequest: null,
    enableOfflineQueue: offlineQueue,
    retryStrategy: (times: number) => Math.min(times * 200, 2000),
  };
}

/** The same, for BullMQ's queues and workers. */
export function redisConnection(url: string, options: { offlineQueue: boolean }): ConnectionOptions {
  return redisOptions(url, options) as ConnectionOptions;
}
