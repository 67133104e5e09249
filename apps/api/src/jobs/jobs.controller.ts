import { Body, Controller, Get, HttpCode, Param, Post, Res, UseGuards } from '@nestjs/common';
import { ApiBody, ApiHeader, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import type { JobView } from '@dimoo/contracts';
import { JobRequestSchema } from '@dimoo/contracts';
import { z } from 'zod';
import type { Caller } from '../auth/api-key.guard';
import { ApiKeyGuard, CurrentCaller } from '../auth/api-key.guard';
import { toView } from './job-view';
import { JobsService } from './jobs.service';

@ApiTags('jobs')
@ApiHeader({ name: 'Authorization', description: 'Bearer <API key>' })
@Controller('v1/jobs')
@UseGuards(ApiKeyGuard)
export class JobsController {
  constructor(private readonly jobs: JobsService) {}

  @Post()
  @HttpCode(202)
  @ApiOperation({ summary: 'Submit a job; 202 with its id and a Location to poll' })
  @ApiBody({ schema: z.toJSONSchema(JobRequestSchema, { io: 'input', unrepresentable: 'any' }) as object })
  async submit(@CurrentCaller() caller: Caller, @Body() body: unknown, @Res({ passthrough: true }) res: Response): Promise<JobView> {
    const view = await this.jobs.submit(caller, body);
    res.setHeader('Location', `/v1/jobs/${view.id}`);
    return view;
  }

  @Get(':id')
  @ApiOperation({ summary: 'Status, progress, timings and result link of a job' })
  async get(@CurrentCaller() caller: Caller, @Param('id') id: string): Promise<JobView> {
    return toView(await this.jobs.get(caller, id));
  }

  @Get(':id/result')
  @ApiOperation({ summary: 'The PNG (image tasks) or the answer text (understanding)' })
  async result(@CurrentCaller() caller: Caller, @Param('id') id: string, @Res() res: Response): Promise<void> {
    const r = await this.jobs.result(caller, id);
    res.status(200).type(r.contentType).send(r.body);
  }

  @Post(':id/cancel')
  @HttpCode(202)
  @ApiOperation({ summary: 'Cancel: a queued job never starts; a running one leaves its batch at the next step' })
  async cancel(@CurrentCaller() caller: Caller, @Param('id') id: string): Promise<JobView> {
    return toView(await this.jobs.cancel(caller, id));
  }
}
