import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query, UseGuards } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { API_KEY_SCOPES, DEFAULT_KEY_SCOPES } from '@dimoo/contracts';
import type { ApiKeyInfo, AuditEntry, Team } from '@dimoo/db';
import { ApiKeyRepository, MAX_ROTATION_GRACE_S, NotFound } from '@dimoo/db';
import { WEIGHT_RANGE } from '@dimoo/queue';
import { z } from 'zod';
import { invalidRequest } from '../common/problem';
import { zodIssues } from '../jobs/jobs.service';
import type { Caller } from './api-key.guard';
import { AdminOnly, ApiKeyGuard, auditActor, CurrentCaller } from './api-key.guard';
import { CacheBus } from './caches';

const TeamBody = z.strictObject({ name: z.string().trim().min(1).max(100) });
const KeyBody = z.strictObject({
  name: z.string().trim().min(1).max(100),
  scopes: z
    .array(z.enum(API_KEY_SCOPES))
    .min(1)
    .default([...DEFAULT_KEY_SCOPES])
    .describe('submit, read, admin (default submit and read)'),
});
const RotateBody = z.strictObject({
  graceSeconds: z.number().int().min(0).max(MAX_ROTATION_GRACE_S).default(0).describe('how long the old key keeps working (0: refused at once)'),
});
const AuditQuerySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(500).default(50),
  before: z
    .string()
    .regex(/^\d{1,18}$/, 'must be an audit entry id')
    .optional(),
});

/** A key as admins see it: never its hash or plaintext. */
const keyView = (k: ApiKeyInfo) => ({
  id: k.id,
  name: k.name,
  prefix: k.prefix,
  scopes: k.scopes,
  createdAt: k.createdAt.toISOString(),
  revokedAt: k.revokedAt?.toISOString() ?? null,
  expiresAt: k.expiresAt?.toISOString() ?? null,
});
const auditView = (e: AuditEntry) => ({
  id: e.id.toString(),
  at: e.at.toISOString(),
  actor: e.actor,
  actorKeyId: e.actorKeyId,
  action: e.action,
  target: { type: e.targetType, id: e.targetId },
  details: e.details,
});
const limit = z.number().int().min(1).nullable();
/** A team's share of the fleet and its limits; a field left out keeps its value, null removes a limit. */
const ShareBody = z
  .strictObject({
    weight: z.number().min(WEIGHT_RANGE.min).max(WEIGHT_RANGE.max),
    maxQueued: limit,
    maxRunning: limit,
    submitsPerMinute: limit,
  })
  .partial();

type TeamView = Pick<Team, 'id' | 'name' | 'weight' | 'maxQueued' | 'maxRunning' | 'submitsPerMinute'>;
const teamView = ({ id, name, weight, maxQueued, maxRunning, submitsPerMinute }: Team): TeamView => ({
  id,
  name,
  weight,
  maxQueued,
  maxRunning,
  submitsPerMinute,
});

/**
 * Admin: teams, their keys (a key's plaintext is shown once) and their share of the fleet. A change here applies at
 * once on this API replica and, through Redis, on the others.
 */
@ApiTags('admin')
@Controller('v1/teams')
@UseGuards(ApiKeyGuard)
export class AdminController {
  constructor(
    private readonly keys: ApiKeyRepository,
    private readonly bus: CacheBus,
  ) {}

  @Post()
  @HttpCode(201)
  @AdminOnly()
  async createTeam(@CurrentCaller() caller: Caller, @Body() body: unknown): Promise<{ id: string; name: string }> {
    const parsed = TeamBody.safeParse(body);
    if (!parsed.success) throw invalidRequest(zodIssues(parsed.error));
    const team = await this.keys.createTeam(parsed.data.name, auditActor(caller));
    return { id: team.id, name: team.name };
  }

  @Post(':teamId/keys')
  @HttpCode(201)
  @AdminOnly()
  @ApiOperation({ summary: 'Issue a key for the team: its plaintext is in this answer only; scopes submit, read (default), admin' })
  async createKey(
    @CurrentCaller() caller: Caller,
    @Param('teamId') teamId: string,
    @Body() body: unknown,
  ): Promise<{ id: string; key: string; scopes: string[] }> {
    const parsed = KeyBody.safeParse(body);
    if (!parsed.success) throw invalidRequest(zodIssues(parsed.error));
    const created = await this.keys.createKey(teamId, parsed.data.name, parsed.data.scopes, auditActor(caller));
    return { id: created.apiKey.id, key: created.key, scopes: created.apiKey.scopes };
  }

  @Get(':teamId/keys')
  @AdminOnly()
  @ApiOperation({ summary: "The team's keys (never their plaintext), revoked and expiring ones included" })
  async listKeys(@Param('teamId') teamId: string): Promise<{ data: ReturnType<typeof keyView>[] }> {
    if (!(await this.keys.getTeam(teamId))) throw new NotFound('team', teamId);
    return { data: (await this.keys.listKeys(teamId)).map(keyView) };
  }

  @Post(':teamId/keys/:keyId/rotate')
  @HttpCode(201)
  @AdminOnly()
  @ApiOperation({ summary: 'Rotate a key: a new key (shown once) with the same name and scopes; the old one works for graceSeconds more' })
  async rotateKey(
    @CurrentCaller() caller: Caller,
    @Param('teamId') teamId: string,
    @Param('keyId') keyId: string,
    @Body() body: unknown,
  ): Promise<{ id: string; key: string; replaces: string }> {
    const parsed = RotateBody.safeParse(body ?? {});
    if (!parsed.success) throw invalidRequest(zodIssues(parsed.error));
    const created = await this.keys.rotate(keyId, teamId, parsed.data.graceSeconds, auditActor(caller));
    if (parsed.data.graceSeconds === 0) await this.bus.publish({ kind: 'key', id: keyId });
    return { id: created.apiKey.id, key: created.key, replaces: keyId };
  }

  @Get(':teamId')
  @AdminOnly()
  async getTeam(@Param('teamId') teamId: string): Promise<TeamView> {
    const team = await this.keys.getTeam(teamId);
    if (!team) throw new NotFound('team', teamId);
    return teamView(team);
  }

  /** Weight (fair share) and limits: `maxQueued` and `submitsPerMinute` are refused with 429, `maxRunning` holds jobs back. */
  @Patch(':teamId')
  @AdminOnly()
  async updateTeam(@CurrentCaller() caller: Caller, @Param('teamId') teamId: string, @Body() body: unknown): Promise<TeamView> {
    const parsed = ShareBody.safeParse(body);
    if (!parsed.success) throw invalidRequest(zodIssues(parsed.error));
    const team = await this.keys.updateTeamShare(teamId, parsed.data, auditActor(caller));
    await this.bus.publish({ kind: 'team', id: teamId });
    return teamView(team);
  }

  /** Revokes a key: refused at once here, and on every other replica as soon as Redis carries the message. */
  @Delete(':teamId/keys/:keyId')
  @HttpCode(204)
  @AdminOnly()
  async revokeKey(@CurrentCaller() caller: Caller, @Param('teamId') teamId: string, @Param('keyId') keyId: string): Promise<void> {
    await this.keys.revoke(keyId, teamId, auditActor(caller));
    await this.bus.publish({ kind: 'key', id: keyId });
  }
}

/** The admins' audit log: every team, key and limit change, who made it and when (newest first). */
@ApiTags('admin')
@Controller('v1/audit')
@UseGuards(ApiKeyGuard)
export class AuditController {
  constructor(private readonly keys: ApiKeyRepository) {}

  @Get()
  @AdminOnly()
  @ApiOperation({ summary: 'The audit log of admin actions, newest first (limit, before: the previous page’s last id)' })
  async list(@Query() query: Record<string, unknown>): Promise<{ data: ReturnType<typeof auditView>[]; hasMore: boolean }> {
    const parsed = AuditQuerySchema.safeParse(query);
    if (!parsed.success) throw invalidRequest(zodIssues(parsed.error));
    const { entries, hasMore } = await this.keys.audit({
      limit: parsed.data.limit,
      ...(parsed.data.before ? { before: BigInt(parsed.data.before) } : {}),
    });
    return { data: entries.map(auditView), hasMore };
  }
}
