/**
 * Webhooks, the team's side: a job's delivery log, and the team's signing secrets (read, rotate). Deliveries are made
 * by the notifier process (apps/notifier), never by the API.
 */
import { Body, Controller, Get, HttpCode, Param, Post, UseGuards } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import type { JobEventType } from '@dimoo/contracts';
import { RotatedWebhookSecretSchema, webhookEventOf, WebhookDeliveriesSchema, WebhookSecretsSchema } from '@dimoo/contracts';
import { WebhookRepository } from '@dimoo/db';
import { z } from 'zod';
import type { Caller } from '../auth/api-key.guard';
import { ApiKeyGuard, CurrentCaller, RequireScope, teamOf } from '../auth/api-key.guard';
import { DELIVERIES, EXAMPLE_IDS, ROTATED_SECRET, WEBHOOK_SECRETS } from '../common/examples';
import { ApiJson, ApiJsonBody, ApiPathParam, ApiProblems, Authenticated, BODY_PROBLEMS, PROBLEMS } from '../common/openapi';
import { invalidRequest } from '../common/problem';
import { JobsService, zodIssues } from './jobs.service';

/** The longest a rotated signing secret keeps signing. */
const MAX_SECRET_GRACE_S = 7 * 24 * 3600;
const RotateSecretBody = z.strictObject({
  graceSeconds: z.number().int().min(0).max(MAX_SECRET_GRACE_S).default(86400).describe('how long the old secret keeps signing (default 24 h)'),
});

@ApiTags('webhooks')
@Authenticated()
@Controller('v1')
@UseGuards(ApiKeyGuard)
export class WebhooksController {
  constructor(
    private readonly webhooks: WebhookRepository,
    private readonly jobs: JobsService,
  ) {}

  @Get('jobs/:id/webhooks')
  @RequireScope('read')
  @ApiOperation({ summary: "A job's webhook deliveries: one per event, each with its tries (time, HTTP status, error)" })
  @ApiPathParam('id', 'the job id', EXAMPLE_IDS.job)
  @ApiJson(200, "The job's webhook URL and its deliveries in event order", ['WebhookDeliveries', WebhookDeliveriesSchema], DELIVERIES)
  @ApiProblems({ 403: PROBLEMS.noTeam, 404: PROBLEMS.notFound(`job ${EXAMPLE_IDS.job}`) }, { scope: 'read' })
  async deliveries(@CurrentCaller() caller: Caller, @Param('id') id: string) {
    const job = await this.jobs.get(caller, id);
    const rows = await this.webhooks.ofJob(job.id, job.teamId);
    return {
      url: job.webhookUrl,
      data: rows.map((d) => ({
        id: d.id,
        eventId: d.eventId.toString(),
        event: webhookEventOf(d.eventType as JobEventType) ?? d.eventType,
        status: d.status,
        attempts: d.attempts,
        deliveredAt: d.deliveredAt?.toISOString() ?? null,
        log: d.log,
      })),
    };
  }

  @Get('webhooks/secrets')
  @RequireScope('submit')
  @ApiOperation({ summary: "The team's active webhook signing secrets (Standard Webhooks, whsec_…), newest first" })
  @ApiJson(200, 'Verify a delivery with any of them (two while a rotation’s grace runs)', ['WebhookSecrets', WebhookSecretsSchema], WEBHOOK_SECRETS)
  @ApiProblems({ 403: PROBLEMS.noTeam }, { scope: 'submit' })
  async secrets(@CurrentCaller() caller: Caller): Promise<{ secrets: string[] }> {
    return { secrets: await this.webhooks.secretsOf(teamOf(caller)) };
  }

  @Post('webhooks/secrets/rotate')
  @HttpCode(201)
  @RequireScope('submit')
  @ApiOperation({ summary: 'A new signing secret; the old one keeps signing (a second signature) for graceSeconds' })
  @ApiJsonBody(
    'RotateWebhookSecret',
    RotateSecretBody,
    { rotate: { summary: 'Rotate, the old secret signing one more day', value: { graceSeconds: 86400 } } },
    false,
  )
  @ApiJson(201, 'The new secret (deliveries carry a signature with each active secret)', ['RotatedWebhookSecret', RotatedWebhookSecretSchema], ROTATED_SECRET)
  @ApiProblems(
    {
      400: [PROBLEMS.invalid('graceSeconds', 'Too big: expected number to be <=604800'), ...BODY_PROBLEMS[400]],
      403: PROBLEMS.noTeam,
      413: BODY_PROBLEMS[413],
    },
    { scope: 'submit' },
  )
  async rotate(@CurrentCaller() caller: Caller, @Body() body: unknown): Promise<{ secret: string; graceSeconds: number }> {
    const parsed = RotateSecretBody.safeParse(body ?? {});
    if (!parsed.success) throw invalidRequest(zodIssues(parsed.error));
    const secret = await this.webhooks.rotateSecret(teamOf(caller), parsed.data.graceSeconds);
    return { secret, graceSeconds: parsed.data.graceSeconds };
  }
}
