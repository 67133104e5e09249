import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ApiKeyScope } from '@dimoo/contracts';
import { API_KEY_SCOPES, DEFAULT_KEY_SCOPES } from '@dimoo/contracts';

import { AlreadyExists, NotFound } from './errors';
import {
  type ApiKey,
  type AuditEntry,
  FOREIGN_KEY_VIOLATION,
  isUuid,
  Prisma,
  type PrismaClient,
  prismaErrorCode,
  RECORD_NOT_FOUND,
  type Team,
  UNIQUE_VIOLATION,
} from './prisma';

export const API_KEY_PREFIX = 'dimoo_';
/** Random base62 characters after the prefix (~190 bits). */
export const API_KEY_RANDOM_LENGTH = 32;
/** Characters of the key stored in clear for lookup: the prefix and 6 random characters. */
export const API_KEY_LOOKUP_LENGTH = 12;

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const KEY_FORMAT = new RegExp(`^${API_KEY_PREFIX}[0-9A-Za-z]{${API_KEY_RANDOM_LENGTH}}$`);

/** An API key as callers may see it: never its hash. */
export type ApiKeyInfo = Omit<ApiKey, 'hash'>;

export interface CreatedApiKey {
  /** The plaintext key. Returned once, stored nowhere: show it to the user and forget it. */
  key: string;
  apiKey: ApiKeyInfo;
}

export interface VerifiedKey {
  keyId: string;
  teamId: string;
  scopes: ApiKeyScope[];
  /** the key's lookup prefix (not secret): how the audit log names an actor */
  prefix: string;
}

/** Who did an admin action: a key (its id and prefix), or the bootstrap ADMIN_API_KEY (id null, label 'bootstrap'). */
export interface AuditActor {
  keyId: string | null;
  label: string;
}

/** A page of the audit log (`audit`): newest first. */
export interface AuditQuery {
  limit?: number;
  /** entries older than this id (the previous page's last) */
  before?: bigint;
}

/** The longest grace period a rotated key keeps working. */
export const MAX_ROTATION_GRACE_S = 7 * 24 * 60 * 60;

const toScopes = (values: readonly string[]): ApiKeyScope[] => values.filter((v): v is ApiKeyScope => (API_KEY_SCOPES as readonly string[]).includes(v));
/** A key neither revoked nor past its expiry (a rotated key's grace period). */
const inForce = (row: { revokedAt: Date | null; expiresAt: Date | null }) =>
  row.revokedAt === null && (row.expiresAt === null || row.expiresAt.getTime() > Date.now());

export function generateApiKey(): string {
  let out = API_KEY_PREFIX;
  while (out.length < API_KEY_PREFIX.length + API_KEY_RANDOM_LENGTH) {
    for (const byte of randomBytes(48)) {
      // 248 = 4 * 62: rejecting larger bytes keeps every character equally likely.
      if (byte < 248 && out.length < API_KEY_PREFIX.length + API_KEY_RANDOM_LENGTH) out += BASE62[byte % 62];
    }
  }
  return out;
}

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

const SHARE_FIELDS = { weight: true, maxQueued: true, maxRunning: true, submitsPerMinute: true } as const;
/** What the fair share and the quotas read of a team. */
export interface TeamShareRow {
  weight: number;
  maxQueued: number | null;
  maxRunning: number | null;
  submitsPerMinute: number | null;
}

const INFO_FIELDS = { id: true, teamId: true, name: true, prefix: true, scopes: true, createdAt: true, revokedAt: true, expiresAt: true } as const;

type Tx = Prisma.TransactionClient;

/**
 * Teams and their API keys. Keys are stored as a lookup prefix plus the sha256 of the whole key. Every admin change
 * given an `actor` writes its audit entry in the same transaction.
 */
export class ApiKeyRepository {
  public constructor(private readonly prisma: PrismaClient) {}

  /** Runs `change` and records it in the audit log, atomically; without an actor, just runs it. */
  private async audited<T>(
    actor: AuditActor | undefined,
    entry: (result: T) => { action: string; targetType: string; targetId: string; details?: Prisma.InputJsonObject },
    change: (tx: Tx) => Promise<T>,
  ): Promise<T> {
    if (!actor) return change(this.prisma);
    return this.prisma.$transaction(async (tx) => {
      const result = await change(tx);
      const e = entry(result);
      await tx.auditEntry.create({
        data: {
          actorKeyId: actor.keyId,
          actor: actor.label,
          action: e.action,
          targetType: e.targetType,
          targetId: e.targetId,
          ...(e.details ? { details: e.details } : {}),
        },
      });
      return result;
    });
  }

  /** Records an admin action that changed nothing in Postgres (a queue paused or resumed in Redis). */
  public async recordAudit(actor: AuditActor, action: string, targetType: string, targetId: string, details?: Prisma.InputJsonObject): Promise<void> {
    await this.prisma.auditEntry.create({
      data: { actorKeyId: actor.keyId, actor: actor.label, action, targetType, targetId, ...(details ? { details } : {}) },
    });
  }

  /** The audit log, newest first. */
  public async audit(query: AuditQuery = {}): Promise<{ entries: AuditEntry[]; hasMore: boolean }> {
    const limit = query.limit ?? 50;
    const rows = await this.prisma.auditEntry.findMany({
      where: query.before === undefined ? {} : { id: { lt: query.before } },
      orderBy: { id: 'desc' },
      take: limit + 1,
    });
    return { entries: rows.slice(0, limit), hasMore: rows.length > limit };
  }

  /** @throws AlreadyExists when the name is taken */
  public async createTeam(name: string, actor?: AuditActor): Promise<Team> {
    try {
      return await this.audited(
        actor,
        (t: Team) => ({ action: 'team.create', targetType: 'team', targetId: t.id, details: { name } }),
        (tx) => tx.team.create({ data: { name } }),
      );
    } catch (error) {
      if (prismaErrorCode(error) === UNIQUE_VIOLATION) throw new AlreadyExists('team', 'name', { cause: error });
      throw error;
    }
  }

  /** A team's share of the fleet and its limits. @throws NotFound */
  public async teamShare(teamId: string): Promise<TeamShareRow> {
    const team = isUuid(teamId) ? await this.prisma.team.findUnique({ where: { id: teamId }, select: SHARE_FIELDS }) : null;
    if (!team) throw new NotFound('team', teamId);
    return team;
  }

  /** Sets a team's weight and limits (fields left out keep their value; null removes a limit). @throws NotFound */
  public async updateTeamShare(teamId: string, patch: Partial<TeamShareRow>, actor?: AuditActor): Promise<Team> {
    if (!isUuid(teamId)) throw new NotFound('team', teamId);
    try {
      return await this.audited(
        actor,
        () => ({ action: 'team.update', targetType: 'team', targetId: teamId, details: { ...patch } }),
        (tx) => tx.team.update({ where: { id: teamId }, data: patch }),
      );
    } catch (error) {
      if (prismaErrorCode(error) === RECORD_NOT_FOUND) throw new NotFound('team', teamId);
      throw error;
    }
  }

  /** Every team, ordered by name. */
  public async listTeams(): Promise<Team[]> {
    return this.prisma.team.findMany({ orderBy: { name: 'asc' } });
  }

  public async getTeam(teamId: string): Promise<Team | null> {
    return isUuid(teamId) ? this.prisma.team.findUnique({ where: { id: teamId } }) : null;
  }

  public async findTeamByName(name: string): Promise<Team | null> {
    return this.prisma.team.findUnique({ where: { name } });
  }

  /**
   * Creates a key for the team and returns its plaintext, the only time it exists outside the caller.
   * @throws NotFound when the team does not exist
   */
  public async createKey(teamId: string, name: string, scopes: readonly ApiKeyScope[] = DEFAULT_KEY_SCOPES, actor?: AuditActor): Promise<CreatedApiKey> {
    if (!isUuid(teamId)) throw new NotFound('team', teamId);
    for (let attempt = 0; ; attempt++) {
      const key = generateApiKey();
      try {
        const apiKey = await this.audited(
          actor,
          (k: ApiKeyInfo) => ({ action: 'key.create', targetType: 'apiKey', targetId: k.id, details: { teamId, name, scopes: [...scopes] } }),
          (tx) =>
            tx.apiKey.create({
              data: { teamId, name, scopes: [...new Set(scopes)], prefix: key.slice(0, API_KEY_LOOKUP_LENGTH), hash: hashApiKey(key) },
              select: INFO_FIELDS,
            }),
        );
        return { key, apiKey };
      } catch (error) {
        const code = prismaErrorCode(error);
        if (code === FOREIGN_KEY_VIOLATION) throw new NotFound('team', teamId);
        // Two keys sharing their first 6 random characters (1 in 5.7e10 per pair): draw another.
        if (code === UNIQUE_VIOLATION && attempt < 3) continue;
        throw error;
      }
    }
  }

  /**
   * The key's team and scopes, or null for malformed, unknown, wrong, revoked and expired keys alike. `expiresAt` is
   * returned so a cache does not keep an expiring key past its end.
   */
  public async verify(plaintext: string): Promise<(VerifiedKey & { expiresAt: Date | null }) | null> {
    if (!KEY_FORMAT.test(plaintext)) return null;
    const row = await this.prisma.apiKey.findUnique({
      where: { prefix: plaintext.slice(0, API_KEY_LOOKUP_LENGTH) },
      select: { id: true, teamId: true, scopes: true, prefix: true, hash: true, revokedAt: true, expiresAt: true },
    });
    if (!row) return null;
    const expected = Buffer.from(row.hash, 'hex');
    const actual = Buffer.from(hashApiKey(plaintext), 'hex');
    if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) return null;
    if (!inForce(row)) return null;
    return { keyId: row.id, teamId: row.teamId, scopes: toScopes(row.scopes), prefix: row.prefix, expiresAt: row.expiresAt };
  }

  /**
   * Whether a key verified earlier still holds `scope`: not revoked, not expired (what a session opened with the key
   * checks on every use, so that revoking the key ends it).
   */
  public async stillHolds(keyId: string, scope: ApiKeyScope): Promise<boolean> {
    if (!isUuid(keyId)) return false;
    const row = await this.prisma.apiKey.findUnique({ where: { id: keyId }, select: { scopes: true, revokedAt: true, expiresAt: true } });
    return row !== null && inForce(row) && toScopes(row.scopes).includes(scope);
  }

  /** Revokes the key (idempotent). Pass `teamId` to refuse other teams' keys. @throws NotFound */
  public async revoke(keyId: string, teamId?: string, actor?: AuditActor): Promise<void> {
    if (!isUuid(keyId)) throw new NotFound('apiKey', keyId);
    const where = { id: keyId, ...(teamId === undefined ? {} : { teamId }) };
    const count = await this.audited(
      actor,
      () => ({ action: 'key.revoke', targetType: 'apiKey', targetId: keyId }),
      async (tx) => (await tx.apiKey.updateMany({ where: { ...where, revokedAt: null }, data: { revokedAt: new Date() } })).count,
    );
    if (count === 0 && (await this.prisma.apiKey.count({ where })) === 0) throw new NotFound('apiKey', keyId);
  }

  /**
   * Rotates a key: a new key with the same name and scopes (its plaintext returned once); the old one keeps working
   * for `graceSeconds` (0: refused at once), time for its clients to switch. @throws NotFound for an unknown, other
   * team's, revoked or already rotated key
   */
  public async rotate(keyId: string, teamId: string, graceSeconds: number, actor?: AuditActor): Promise<CreatedApiKey> {
    if (!isUuid(keyId) || !isUuid(teamId)) throw new NotFound('apiKey', keyId);
    const key = generateApiKey();
    const until = new Date(Date.now() + graceSeconds * 1000);
    return this.audited(
      actor,
      (r: CreatedApiKey) => ({ action: 'key.rotate', targetType: 'apiKey', targetId: keyId, details: { newKeyId: r.apiKey.id, graceSeconds } }),
      async (tx) => {
        const old = await tx.apiKey.findFirst({ where: { id: keyId, teamId, revokedAt: null, expiresAt: null } });
        if (!old) throw new NotFound('apiKey', keyId);
        await tx.apiKey.update({ where: { id: keyId }, data: graceSeconds > 0 ? { expiresAt: until } : { revokedAt: new Date() } });
        const apiKey = await tx.apiKey.create({
          data: { teamId, name: old.name, scopes: old.scopes, prefix: key.slice(0, API_KEY_LOOKUP_LENGTH), hash: hashApiKey(key) },
          select: INFO_FIELDS,
        });
        return { key, apiKey };
      },
    );
  }

  public async listKeys(teamId: string): Promise<ApiKeyInfo[]> {
    if (!isUuid(teamId)) return [];
    return this.prisma.apiKey.findMany({ where: { teamId }, select: INFO_FIELDS, orderBy: { createdAt: 'asc' } });
  }
}
