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
    expect(apiKey).toMatchObject({
      teamId,
      name: 'ci',
      scopes: ['submit', 'read'],
      expiresAt: null,
      prefix: key.slice(0, API_KEY_LOOKUP_LENGTH),
      revokedAt: null,
    });
    expect(apiKey).not.toHaveProperty('hash');

    const [row] = await prisma.$queryRaw<Record<string, unknown>[]>`SELECT * FROM api_keys WHERE id = ${apiKey.id}::uuid`;
    expect(row!['hash']).toBe(hashApiKey(key));
    expect(row!['hash']).toMatch(/^[0-9a-f]{64}$/);
    const stored = JSON.stringify(row);
    expect(stored).not.toContain(key);
    expect(stored).not.toContain(key.slice(API_KEY_LOOKUP_LENGTH));
  });

  it('verifies a valid key and reports its team and scopes', async () => {
    const user = await keys.createKey(teamId, 'user');
    const admin = await keys.createKey(teamId, 'ops', ['admin', 'read']);
    const view = (k: typeof user) => ({ keyId: k.apiKey.id, teamId, prefix: k.apiKey.prefix, expiresAt: null });
    expect(await keys.verify(user.key)).toEqual({ ...view(user), scopes: ['submit', 'read'] });
    expect(await keys.verify(admin.key)).toEqual({ ...view(admin), scopes: ['admin', 'read'] });
  });

  it('rotates a key: the new one works, the old one through its grace period only; the change is audited', async () => {
    const actor = { keyId: null, label: 'bootstrap' };
    const old = await keys.createKey(teamId, 'rotating', ['read'], actor);
    const next = await keys.rotate(old.apiKey.id, teamId, 1, actor);
    expect(next.apiKey).toMatchObject({ name: 'rotating', scopes: ['read'] });
    expect(await keys.verify(next.key)).toMatchObject({ keyId: next.apiKey.id });
    expect(await keys.verify(old.key)).toMatchObject({ keyId: old.apiKey.id, expiresAt: expect.any(Date) });
    await expect(keys.rotate(old.apiKey.id, teamId, 0)).rejects.toBeInstanceOf(NotFound);
    await new Promise((r) => setTimeout(r, 1100));
    expect(await keys.verify(old.key)).toBeNull();
    const now = await keys.rotate(next.apiKey.id, teamId, 0);
    expect(await keys.verify(next.key)).toBeNull();
    expect(await keys.verify(now.key)).not.toBeNull();
    const { entries } = await keys.audit({ limit: 2 });
    expect(entries.map((e) => [e.action, e.targetId, e.actor])).toEqual([
      ['key.rotate', old.apiKey.id, 'bootstrap'],
      ['key.create', old.apiKey.id, 'bootstrap'],
    ]);
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
    expect(await keys.verify(key)).toMatchObject({ keyId: apiKey.id, teamId: other.id });
  });

  it('is NotFound for keys of an unknown team', async () => {
    await expect(keys.createKey(randomUUID(), 'k')).rejects.toBeInstanceOf(NotFound);
    await expect(keys.createKey('not-a-uuid', 'k')).rejects.toBeInstanceOf(NotFound);
    await expect(keys.revoke(randomUUID())).rejects.toBeInstanceOf(NotFound);
  });
});
