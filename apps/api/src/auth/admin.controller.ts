import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query, UseGuards } from '@nestjs/common';
import { ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import {
  API_KEY_SCOPES,
  AuditPageSchema,
  CreatedKeySchema,
  CreatedTeamSchema,
  DEFAULT_KEY_SCOPES,
  KeyListSchema,
  RotatedKeySchema,
  TeamListSchema,
  TeamViewSchema,
} from '@dimoo/contracts';
import type { ApiKeyInfo, AuditEntry, Team } from '@dimoo/db';
import { ApiKeyRepository, MAX_ROTATION_GRACE_S, NotFound } from '@dimoo/db';
import { WEIGHT_RANGE } from '@dimoo/queue';
import { z } from 'zod';
import { TEAMS } from '../admin/examples';
import { AUDIT, CREATED_KEY, CREATED_TEAM, EXAMPLE_IDS, KEYS, ROTATED_KEY, TEAM } from '../common/examples';
import { ApiJson, ApiJsonBody, ApiPathParam, ApiProblems, ApiZodQuery, Authenticated, BODY_PROBLEMS, PROBLEMS } from '../common/openapi';
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

const admin = { scope: 'admin' };
const teamId = () => ApiPathParam('teamId', 'the team id', EXAMPLE_IDS.team);
const keyId = () => ApiPathParam('keyId', 'the key id', EXAMPLE_IDS.key);
const teamNotFound = PROBLEMS.notFound(`team ${EXAMPLE_IDS.team}`);
const keyNotFound = PROBLEMS.notFound(`apiKey ${EXAMPLE_IDS.key}`);

/**
 * Admin: teams, their keys (a key's plaintext is shown once) and their share of the fleet. A change here applies at
 * once on this API replica and, through Redis, on the others.
 */
@ApiTags('admin')
@Authenticated()
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
  @ApiOperation({ summary: 'Create a team (then issue its keys)' })
  @ApiJsonBody('CreateTeam', TeamBody, { team: { summary: 'A team', value: { name: 'research' } } })
  @ApiJson(201, 'The team', ['CreatedTeam', CreatedTeamSchema], CREATED_TEAM)
  @ApiProblems(
    {
      400: [PROBLEMS.invalid('name', 'Too small: expected string to have >=1 characters'), ...BODY_PROBLEMS[400]],
      409: PROBLEMS.of(409, 'already-exists', 'Already exists', 'team with this name already exists'),
      413: BODY_PROBLEMS[413],
    },
    admin,
  )
  async createTeam(@CurrentCaller() caller: Caller, @Body() body: unknown): Promise<{ id: string; name: string }> {
    const parsed = TeamBody.safeParse(body);
    if (!parsed.success) throw invalidRequest(zodIssues(parsed.error));
    const team = await this.keys.createTeam(parsed.data.name, auditActor(caller));
    return { id: team.id, name: team.name };
  }

  @Get()
  @AdminOnly()
  @ApiOperation({ summary: 'Every team with its weight and limits, ordered by name' })
  @ApiJson(200, 'The teams', ['TeamList', TeamListSchema], TEAMS)
  @ApiProblems({}, admin)
  async listTeams(): Promise<{ items: TeamView[] }> {
    return { items: (await this.keys.listTeams()).map(teamView) };
  }

  @Post(':teamId/keys')
  @HttpCode(201)
  @AdminOnly()
  @ApiOperation({ summary: 'Issue a key for the team: its plaintext is in this answer only; scopes submit, read (default), admin' })
  @teamId()
  @ApiJsonBody('CreateKey', KeyBody, {
    default: { summary: 'Submit and read (the default scopes)', value: { name: 'ci' } },
    readOnly: { summary: 'A read-only key (dashboards)', value: { name: 'dashboard', scopes: ['read'] } },
  })
  @ApiJson(201, 'The key: store it now, it is never shown again', ['CreatedKey', CreatedKeySchema], CREATED_KEY)
  @ApiProblems(
    {
      400: [PROBLEMS.invalid('scopes.0', 'Invalid option: expected one of "submit"|"read"|"admin"'), ...BODY_PROBLEMS[400]],
      404: teamNotFound,
      413: BODY_PROBLEMS[413],
    },
    admin,
  )
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
  @teamId()
  @ApiJson(200, 'The keys, newest first', ['KeyList', KeyListSchema], KEYS)
  @ApiProblems({ 404: teamNotFound }, admin)
  async listKeys(@Param('teamId') teamId: string): Promise<{ data: ReturnType<typeof keyView>[] }> {
    if (!(await this.keys.getTeam(teamId))) throw new NotFound('team', teamId);
    return { data: (await this.keys.listKeys(teamId)).map(keyView) };
  }

  @Post(':teamId/keys/:keyId/rotate')
  @HttpCode(201)
  @AdminOnly()
  @ApiOperation({ summary: 'Rotate a key: a new key (shown once) with the same name and scopes; the old one works for graceSeconds more' })
  @teamId()
  @keyId()
  @ApiJsonBody('RotateKey', RotateBody, { grace: { summary: 'The old key works one more day', value: { graceSeconds: 86400 } } }, false)
  @ApiJson(201, 'The new key: store it now, it is never shown again', ['RotatedKey', RotatedKeySchema], ROTATED_KEY)
  @ApiProblems(
    {
      400: [PROBLEMS.invalid('graceSeconds', 'Too big: expected number to be <=604800'), ...BODY_PROBLEMS[400]],
      404: keyNotFound,
      413: BODY_PROBLEMS[413],
    },
    admin,
  )
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
  @ApiOperation({ summary: 'A team: its weight (share of the fleet) and limits' })
  @teamId()
  @ApiJson(200, 'The team', ['Team', TeamViewSchema], TEAM)
  @ApiProblems({ 404: teamNotFound }, admin)
  async getTeam(@Param('teamId') teamId: string): Promise<TeamView> {
    const team = await this.keys.getTeam(teamId);
    if (!team) throw new NotFound('team', teamId);
    return teamView(team);
  }

  /** Weight (fair share) and limits: `maxQueued` and `submitsPerMinute` are refused with 429, `maxRunning` holds jobs back. */
  @Patch(':teamId')
  @AdminOnly()
  @ApiOperation({ summary: "Set a team's weight and limits: a field left out keeps its value, null removes a limit" })
  @teamId()
  @ApiJsonBody('TeamShare', ShareBody, {
    share: { summary: 'Twice the default share, at most 500 waiting, 120 submissions a minute', value: { weight: 2, maxQueued: 500, submitsPerMinute: 120 } },
    unlimited: { summary: 'No limit on running jobs', value: { maxRunning: null } },
  })
  @ApiJson(200, 'The team as it is now', ['Team', TeamViewSchema], TEAM)
  @ApiProblems(
    { 400: [PROBLEMS.invalid('weight', 'Too small: expected number to be >=0.01'), ...BODY_PROBLEMS[400]], 404: teamNotFound, 413: BODY_PROBLEMS[413] },
    admin,
  )
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
  @ApiOperation({ summary: 'Revoke a key: refused at once (on other replicas as soon as Redis carries the news)' })
  @teamId()
  @keyId()
  @ApiResponse({ status: 204, description: 'Revoked' })
  @ApiProblems({ 404: keyNotFound }, admin)
  async revokeKey(@CurrentCaller() caller: Caller, @Param('teamId') teamId: string, @Param('keyId') keyId: string): Promise<void> {
    await this.keys.revoke(keyId, teamId, auditActor(caller));
    await this.bus.publish({ kind: 'key', id: keyId });
  }
}

/** The admins' audit log: every team, key and limit change, who made it and when (newest first). */
@ApiTags('admin')
@Authenticated()
@Controller('v1/audit')
@UseGuards(ApiKeyGuard)
export class AuditController {
  constructor(private readonly keys: ApiKeyRepository) {}

  @Get()
  @AdminOnly()
  @ApiOperation({ summary: 'The audit log of admin actions, newest first (limit, before: the previous page’s last id)' })
  @ApiZodQuery(AuditQuerySchema, { limit: 50, before: '42' })
  @ApiJson(200, 'A page of entries, newest first', ['AuditPage', AuditPageSchema], AUDIT)
  @ApiProblems({ 400: PROBLEMS.invalid('before', 'must be an audit entry id') }, admin)
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
