import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

import { AlreadyExists, NotFound } from './errors';
import { type ApiKey, FOREIGN_KEY_VIOLATION, isUuid, type PrismaClient, prismaErrorCode, RECORD_NOT_FOUND, type Team, UNIQUE_VIOLATION } from './prisma';

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
  admin: boolean;
}

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

const INFO_FIELDS = { id: true, teamId: true, name: true, prefix: true, admin: true, createdAt: true, revokedAt: true } as const;

/** Teams and their API keys. Keys are stored as a lookup prefix plus the sha256 of the whole key. */
export class ApiKeyRepository {
  public constructor(private readonly prisma: PrismaClient) {}

  /** @throws AlreadyExists when the name is taken */
  public async createTeam(name: string): Promise<Team> {
    try {
      return await this.prisma.team.create({ data: { name } });
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
  public async updateTeamShare(teamId: string, patch: Partial<TeamShareRow>): Promise<Team> {
    if (!isUuid(teamId)) throw new NotFound('team', teamId);
    try {
      return await this.prisma.team.update({ where: { id: teamId }, data: patch });
    } catch (error) {
      if (prismaErrorCode(error) === RECORD_NOT_FOUND) throw new NotFound('team', teamId);
      throw error;
    }
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
  public async createKey(teamId: string, name: string, admin = false): Promise<CreatedApiKey> {
    if (!isUuid(teamId)) throw new NotFound('team', teamId);
    for (let attempt = 0; ; attempt++) {
      const key = generateApiKey();
      try {
        const apiKey = await this.prisma.apiKey.create({
          data: { teamId, name, admin, prefix: key.slice(0, API_KEY_LOOKUP_LENGTH), hash: hashApiKey(key) },
          select: INFO_FIELDS,
        });
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

  /** The key's team and rights, or null for malformed, unknown, wrong and revoked keys alike. */
  public async verify(plaintext: string): Promise<VerifiedKey | null> {
    if (!KEY_FORMAT.test(plaintext)) return null;
    const row = await this.prisma.apiKey.findUnique({
      where: { prefix: plaintext.slice(0, API_KEY_LOOKUP_LENGTH) },
      select: { id: true, teamId: true, admin: true, hash: true, revokedAt: true },
    });
    if (!row) return null;
    const expected = Buffer.from(row.hash, 'hex');
    const actual = Buffer.from(hashApiKey(plaintext), 'hex');
    if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) return null;
    if (row.revokedAt !== null) return null;
    return { keyId: row.id, teamId: row.teamId, admin: row.admin };
  }

  /** Revokes the key (idempotent). Pass `teamId` to refuse other teams' keys. @throws NotFound */
  public async revoke(keyId: string, teamId?: string): Promise<void> {
    if (!isUuid(keyId)) throw new NotFound('apiKey', keyId);
    const where = { id: keyId, ...(teamId === undefined ? {} : { teamId }) };
    const { count } = await this.prisma.apiKey.updateMany({ where: { ...where, revokedAt: null }, data: { revokedAt: new Date() } });
    if (count === 0 && (await this.prisma.apiKey.count({ where })) === 0) throw new NotFound('apiKey', keyId);
  }

  public async listKeys(teamId: string): Promise<ApiKeyInfo[]> {
    if (!isUuid(teamId)) return [];
    return this.prisma.apiKey.findMany({ where: { teamId }, select: INFO_FIELDS, orderBy: { createdAt: 'asc' } });
  }
}
