import { Body, Controller, HttpCode, Param, Post, UseGuards } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { ApiKeyRepository } from '@dimoo/db';
import { z } from 'zod';
import { invalidRequest } from '../common/problem';
import { zodIssues } from '../jobs/jobs.service';
import { AdminOnly, ApiKeyGuard } from './api-key.guard';

const TeamBody = z.object({ name: z.string().trim().min(1).max(100) });
const KeyBody = z.object({ name: z.string().trim().min(1).max(100), admin: z.boolean().default(false) });

/** Bootstrap: the admin key creates teams and their keys. A key's plaintext is shown once. */
@ApiTags('admin')
@Controller('v1/teams')
@UseGuards(ApiKeyGuard)
export class AdminController {
  constructor(private readonly keys: ApiKeyRepository) {}

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
}
