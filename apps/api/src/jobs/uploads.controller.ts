/**
 * Uploads: an image sent straight to the object store with a presigned PUT URL (the API carries no bytes), then used
 * in any job of the team as `{ "upload": id }`. Uploads are kept UPLOAD_TTL_MS (the orphan sweeper removes them).
 */
import { randomUUID } from 'node:crypto';
import { Body, Controller, Headers, HttpCode, Post, UseGuards } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { MAX_IMAGE_BYTES, SUBMIT_AS_HEADER, UploadSchema } from '@dimoo/contracts';
import { ApiKeyRepository } from '@dimoo/db';
import { ObjectStore, UPLOAD_TTL_MS, uploadKey } from '@dimoo/storage';
import { z } from 'zod';
import type { Caller } from '../auth/api-key.guard';
import { ApiKeyGuard, auditActor, CurrentCaller, RequireScope } from '../auth/api-key.guard';
import { EXAMPLE_IDS } from '../common/examples';
import { ApiJson, ApiJsonBody, ApiProblems, ApiSubmitAs, Authenticated, BODY_PROBLEMS, PROBLEMS } from '../common/openapi';
import { invalidRequest } from '../common/problem';
import { JobsService, zodIssues } from './jobs.service';

/** How long an upload URL can be used. */
const UPLOAD_URL_TTL_S = 15 * 60;
const UploadBody = z.strictObject({});

@ApiTags('jobs')
@Authenticated()
@Controller('v1/uploads')
@UseGuards(ApiKeyGuard)
export class UploadsController {
  constructor(
    private readonly store: ObjectStore,
    private readonly jobs: JobsService,
    private readonly keys: ApiKeyRepository,
  ) {}

  @Post()
  @HttpCode(201)
  @RequireScope('submit')
  @ApiOperation({ summary: 'A presigned URL to PUT one image to (15 min); use it in a job as { "upload": id } within 24 h' })
  @ApiSubmitAs()
  @ApiJsonBody('CreateUpload', UploadBody, { empty: { summary: 'No options', value: {} } }, false)
  @ApiJson(201, 'Where to PUT the image', ['Upload', UploadSchema], {
    id: EXAMPLE_IDS.upload,
    url: `https://s3.example.com/dimoo/uploads/${EXAMPLE_IDS.upload}?X-Amz-Signature=3b1f`,
    method: 'PUT',
    maxBytes: MAX_IMAGE_BYTES,
    expiresAt: '2026-11-30T10:15:00.000Z',
    usableUntil: '2026-12-01T10:00:00.000Z',
  })
  @ApiProblems(
    {
      400: [PROBLEMS.invalid('name', 'Unrecognized key: "name"'), ...BODY_PROBLEMS[400]],
      403: [PROBLEMS.noTeam, PROBLEMS.submitAsForbidden],
      404: PROBLEMS.notFound(`team ${EXAMPLE_IDS.team}`),
      413: BODY_PROBLEMS[413],
      503: [PROBLEMS.storageUnavailable],
    },
    { scope: 'submit' },
  )
  async create(@CurrentCaller() caller: Caller, @Body() body: unknown, @Headers(SUBMIT_AS_HEADER) asTeam: string | undefined) {
    const { teamId, as } = await this.jobs.submitTeam(caller, asTeam);
    const parsed = UploadBody.safeParse(body ?? {});
    if (!parsed.success) throw invalidRequest(zodIssues(parsed.error));
    const id = randomUUID();
    const url = await this.store.presignedPut(uploadKey(teamId, id), UPLOAD_URL_TTL_S);
    // an upload URL writes into the team's storage: an admin's, for another team, is audited like its submits
    if (as) await this.keys.recordAudit(auditActor(caller), 'upload.submit_as', 'upload', id, { teamId });
    return {
      id,
      url,
      method: 'PUT',
      maxBytes: MAX_IMAGE_BYTES,
      expiresAt: new Date(Date.now() + UPLOAD_URL_TTL_S * 1000).toISOString(),
      usableUntil: new Date(Date.now() + UPLOAD_TTL_MS).toISOString(),
    };
  }
}
