import { randomUUID } from 'node:crypto';

import { API_KEY_LOOKUP_LENGTH, ApiKeyRepository, generateApiKey, hashApiKey } from './api-key.repository';
import { AlreadyExists, NotFound } from './errors';
import { createPrisma, type PrismaClient } from './prisma';
import { createTestDatabase, type TestDatabase } from './testing';

describe('ApiKeyRepository (PostgreSQL)', () => {
  let db: TestDatabase;
  let prisma: PrismaClient;
  let keys: ApiKeyRepository;
  let teamId: string;

  beforeAll(async () => {
    db = await createTestDatabase();
    prisma = createPrisma(db.url);
    keys = new ApiKeyRepository(prisma);
    teamId = (await keys.createTeam('acme')).id;
  });

  afterAll(async () => {
    await prisma?.$disconnect();
    await db?.drop();
  });

  it('generates keys of the documented format', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const key = generateApiKey();
      expect(key).toMatch(/^dimoo_[0-9A-Za-z]{32}$/);
      seen.add(key);
    }
    expect(seen.size).toBe(200);
  });

  it('refuses a second team of the same name', async () => {
    await keys.createTeam('initech');
    await expect(keys.createTeam('initech')).rejects.toBeInstanceOf(AlreadyExists);
    expect((await keys.findTeamByName('initech'))!.name).toBe('initech');
  });

  it('returns the plaintext once and stores only its prefix and sha256', async () => {
    const { key, apiKey } = await keys.createKey(teamId, 'ci');
    expect(key).toMatch(/^dimoo_[0-9A-Za-z]{32}$/);
    expect(apiKey).toMatchObject({ teamId, name: 'ci', admin: false, prefix: key.slice(0, API_KEY_LOOKUP_LENGTH), revokedAt: null });
    expect(apiKey).not.toHaveProperty('hash');

    const [row] = await prisma.$queryRaw<Record<string, unknown>[]>`SELECT * FROM api_keys WHERE id = ${apiKey.id}::uuid`;
    expect(row!['hash']).toBe(hashApiKey(key));
    expect(row!['hash']).toMatch(/^[0-9a-f]{64}$/);
    const stored = JSON.stringify(row);
    expect(stored).not.toContain(key);
    expect(stored).not.toContain(key.slice(API_KEY_LOOKUP_LENGTH));
  });

  it('verifies a valid key and reports its team and rights', async () => {
    const user = await keys.createKey(teamId, 'user');
    const admin = await keys.createKey(teamId, 'ops', true);
    expect(await keys.verify(user.key)).toEqual({ keyId: user.apiKey.id, teamId, admin: false });
    expect(await keys.verify(admin.key)).toEqual({ keyId: admin.apiKey.id, teamId, admin: true });
  });

  it('rejects wrong, malformed and unknown keys', async () => {
    const { key } = await keys.createKey(teamId, 'x');
    const last = key.at(-1) === 'a' ? 'b' : 'a';
    expect(await keys.verify(key.slice(0, -1) + last)).toBeNull(); // same prefix, wrong secret
    expect(await keys.verify(generateApiKey())).toBeNull();
    expect(await keys.verify(key.slice(0, API_KEY_LOOKUP_LENGTH))).toBeNull();
    expect(await keys.verify(`${key} `)).toBeNull();
    expect(await keys.verify('')).toBeNull();
    expect(await keys.verify(hashApiKey(key))).toBeNull();
  });

  it('rejects a revoked key', async () => {
    const { key, apiKey } = await keys.createKey(teamId, 'old');
    await keys.revoke(apiKey.id);
    await keys.revoke(apiKey.id);
    expect(await keys.verify(key)).toBeNull();
    const listed = (await keys.listKeys(teamId)).find((k) => k.id === apiKey.id);
    expect(listed!.revokedAt).toBeInstanceOf(Date);
  });

  it("does not revoke another team's key when scoped", async () => {
    const other = await keys.createTeam('umbrella');
    const { key, apiKey } = await keys.createKey(other.id, 'theirs');
    await expect(keys.revoke(apiKey.id, teamId)).rejects.toBeInstanceOf(NotFound);
    expect(await keys.verify(key)).toEqual({ keyId: apiKey.id, teamId: other.id, admin: false });
  });

  it('is NotFound for keys of an unknown team', async () => {
    await expect(keys.createKey(randomUUID(), 'k')).rejects.toBeInstanceOf(NotFound);
    await expect(keys.createKey('not-a-uuid', 'k')).rejects.toBeInstanceOf(NotFound);
    await expect(keys.revoke(randomUUID())).rejects.toBeInstanceOf(NotFound);
  });
});
