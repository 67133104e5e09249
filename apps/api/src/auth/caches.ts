/**
 * What the request path remembers instead of asking Postgres each time: verified API keys and each team's share and
 * limits, for API_KEY_CACHE_MS. A change made through one API replica (a key revoked, limits set) applies there at
 * once and is published on Redis (`<QUEUE_PREFIX>:cache-invalidate`) so the other replicas forget their copy; if that
 * message is lost (Redis down), API_KEY_CACHE_MS is the bound.
 */
import type { OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { Redis } from 'ioredis';
import type { ApiKeyScope } from '@dimoo/contracts';
import { ApiKeyRepository } from '@dimoo/db';
import type { TeamShare } from '@dimoo/queue';
import { redisOptions } from '@dimoo/queue';
import type { ApiEnv } from '../config';
import { API_ENV } from '../tokens';

export interface Caller {
  teamId: string | null;
  /** what the key may do (API_KEY_SCOPES) */
  scopes: readonly ApiKeyScope[];
  /** the key's id (null for the bootstrap admin key) */
  keyId: string | null;
  /** how the audit log names the caller: the key's prefix, or `bootstrap` */
  label: string;
}

/** Most entries an in-process map of the request path remembers (oldest forgotten first). */
export const CACHE_ENTRIES = 10_000;

class Ttl<V> {
  private readonly entries = new Map<string, { value: V; until: number }>();
  constructor(private readonly ttlMs: number) {}

  get(key: string): V | undefined {
    const hit = this.entries.get(key);
    return hit && hit.until > Date.now() ? hit.value : undefined;
  }

  set(key: string, value: V): void {
    if (this.ttlMs <= 0) return;
    this.entries.delete(key);
    this.entries.set(key, { value, until: Date.now() + this.ttlMs });
    if (this.entries.size > CACHE_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  forgetWhere(match: (value: V) => boolean): void {
    for (const [k, e] of this.entries) if (match(e.value)) this.entries.delete(k);
  }
}

/** Verified keys by the sha256 of the key. */
@Injectable()
export class KeyCache {
  private readonly verified: Ttl<Caller>;
  constructor(@Inject(API_ENV) env: ApiEnv) {
    this.verified = new Ttl(env.API_KEY_CACHE_MS);
  }
  get(hash: string): Caller | undefined {
    return this.verified.get(hash);
  }
  set(hash: string, caller: Caller): void {
    this.verified.set(hash, caller);
  }
  forgetKey(keyId: string): void {
    this.verified.forgetWhere((c) => c.keyId === keyId);
  }
}

/** Each team's weight and limits. */
@Injectable()
export class TeamShares {
  private readonly shares: Ttl<TeamShare>;
  constructor(
    private readonly keys: ApiKeyRepository,
    @Inject(API_ENV) env: ApiEnv,
  ) {
    this.shares = new Ttl(env.API_KEY_CACHE_MS);
  }

  /** @throws NotFound */
  async get(teamId: string): Promise<TeamShare> {
    const hit = this.shares.get(teamId);
    if (hit) return hit;
    const share = await this.keys.teamShare(teamId);
    this.shares.set(teamId, share);
    return share;
  }

  forget(teamId: string): void {
    this.shares.delete(teamId);
  }
}

type Invalidation = { kind: 'key'; id: string } | { kind: 'team'; id: string };

@Injectable()
export class CacheBus implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(CacheBus.name);
  private readonly channel: string;
  private readonly subscriber: Redis;
  private readonly publisher: Redis;

  constructor(
    private readonly keyCache: KeyCache,
    private readonly shares: TeamShares,
    @Inject(API_ENV) env: ApiEnv,
  ) {
    this.channel = `${env.QUEUE_PREFIX}:cache-invalidate`;
    // the subscriber queues its SUBSCRIBE until connected and subscribes again after a reconnect
    this.subscriber = new Redis({ ...redisOptions(env.REDIS_URL, { offlineQueue: true }), lazyConnect: true });
    this.publisher = new Redis({ ...redisOptions(env.REDIS_URL, { offlineQueue: false }), lazyConnect: true });
    for (const c of [this.subscriber, this.publisher]) c.on('error', () => undefined);
  }

  onApplicationBootstrap(): void {
    this.subscriber.on('message', (_channel: string, message: string) => this.apply(message));
    void this.subscriber.subscribe(this.channel).catch((err: unknown) => this.logger.warn(`cache invalidation: ${String(err)}`));
    void this.publisher.connect().catch(() => undefined);
  }

  onApplicationShutdown(): void {
    this.subscriber.disconnect();
    this.publisher.disconnect();
  }

  /** Applies here, then tells the other replicas. */
  async publish(message: Invalidation): Promise<void> {
    const text = JSON.stringify(message);
    this.apply(text);
    await this.publisher.publish(this.channel, text).catch((err: unknown) => this.logger.warn(`cache invalidation not sent: ${String(err)}`));
  }

  private apply(text: string): void {
    try {
      const m = JSON.parse(text) as Invalidation;
      if (m.kind === 'key') this.keyCache.forgetKey(m.id);
      else if (m.kind === 'team') this.shares.forget(m.id);
    } catch {
      // not ours
    }
  }
}
