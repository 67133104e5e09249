import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, UseGuards } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import type { Team } from '@dimoo/db';
import { ApiKeyRepository, NotFound } from '@dimoo/db';
import { WEIGHT_RANGE } from '@dimoo/queue';
import { z } from 'zod';
import { invalidRequest } from '../common/problem';
import { zodIssues } from '../jobs/jobs.service';
import { AdminOnly, ApiKeyGuard } from './api-key.guard';
import { CacheBus } from './caches';

const TeamBody = z.object({ name: z.string().trim().min(1).max(100) });
const KeyBody = z.object({ name: z.string().trim().min(1).max(100), admin: z.boolean().default(false) });
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
  async createTeam(@Body() body: unknown): Promise<{ id: string; name: string }> {
    const parsed = TeamBody.safeParse(body);
    if (!parsed.success) throw invalidRequest(zodIssues(parsed.error));
    const team = await this.keys.createTeam(parsed.data.name);
    return { id: team.id, name: team.name };
  }

  @Post(':teamId/keys')
  @HttpCode(201)
  @AdminOnly()
  async createKey(@Param('teamId') teamId: string, @Body() body: unknown): Promise<{ id: string; key: string }> {
    const parsed = KeyBody.safeParse(body);
    if (!parsed.success) throw invalidRequest(zodIssues(parsed.error));
    const created = await this.keys.createKey(teamId, parsed.data.name, parsed.data.admin);
    return { id: created.apiKey.id, key: created.key };
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
  async updateTeam(@Param('teamId') teamId: string, @Body() body: unknown): Promise<TeamView> {
    const parsed = ShareBody.safeParse(body);
    if (!parsed.success) throw invalidRequest(zodIssues(parsed.error));
    const team = await this.keys.updateTeamShare(teamId, parsed.data);
    await this.bus.publish({ kind: 'team', id: teamId });
    return teamView(team);
  }

  /** Revokes a key: refused at once here, and on every other replica as soon as Redis carries the message. */
  @Delete(':teamId/keys/:keyId')
  @HttpCode(204)
  @AdminOnly()
  async revokeKey(@Param('teamId') teamId: string, @Param('keyId') keyId: string): Promise<void> {
    await this.keys.revoke(keyId, teamId);
    await this.bus.publish({ kind: 'key', id: keyId });
  }
}
