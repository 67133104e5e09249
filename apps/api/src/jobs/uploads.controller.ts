/**
 * Uploads: an image sent straight to the object store with a presigned PUT URL (the API carries no bytes), then used
 * in any job of the team as `{ "upload": id }`. Uploads are kept UPLOAD_TTL_MS (the orphan sweeper removes them).
 */
import { randomUUID } from 'node:crypto';
import { Body, Controller, HttpCode, Post, UseGuards } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { MAX_IMAGE_BYTES, UploadSchema } from '@dimoo/contracts';
import { ObjectStore, UPLOAD_TTL_MS, uploadKey } from '@dimoo/storage';
import { z } from 'zod';
import type { Caller } from '../auth/api-key.guard';
import { ApiKeyGuard, CurrentCaller, RequireScope, teamOf } from '../auth/api-key.guard';
import { EXAMPLE_IDS } from '../common/examples';
import { ApiJson, ApiJsonBody, ApiProblems, Authenticated, BODY_PROBLEMS, PROBLEMS } from '../common/openapi';
import { invalidRequest } from '../common/problem';
import { zodIssues } from './jobs.service';

/** How long an upload URL can be used. */
const UPLOAD_URL_TTL_S = 15 * 60;
const UploadBody = z.strictObject({});

@ApiTags('jobs')
@Authenticated()
@Controller('v1/uploads')
@UseGuards(ApiKeyGuard)
export class UploadsController {
  constructor(private readonly store: ObjectStore) {}

  @Post()
  @HttpCode(201)
  @RequireScope('submit')
  @ApiOperation({ summary: 'A presigned URL to PUT one image to (15 min); use it in a job as { "upload": id } within 24 h' })
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
      403: PROBLEMS.noTeam,
      413: BODY_PROBLEMS[413],
      503: [PROBLEMS.storageUnavailable],
    },
    { scope: 'submit' },
  )
  async create(@CurrentCaller() caller: Caller, @Body() body: unknown) {
    const teamId = teamOf(caller);
    const parsed = UploadBody.safeParse(body ?? {});
    if (!parsed.success) throw invalidRequest(zodIssues(parsed.error));
    const id = randomUUID();
    const url = await this.store.presignedPut(uploadKey(teamId, id), UPLOAD_URL_TTL_S);
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
