/**
 * A submit's input images, however they are given: inline base64, a multipart part (the JSON in a `request` part, each
 * image a part named after its field), an upload (`POST /v1/uploads`) or an earlier image result of the same team.
 * Each becomes bytes here; what cannot be used is a 400 naming the field.
 */
import { Injectable } from '@nestjs/common';
import { createHash } from 'node:crypto';
import type { ImageInput } from '@dimoo/contracts';
import { MAX_IMAGE_BYTES } from '@dimoo/contracts';
import { JobRepository } from '@dimoo/db';
import { ObjectNotFound, ObjectStore, StorageError, uploadKey } from '@dimoo/storage';
import { invalidRequest, storageUnavailable } from '../common/problem';

@Injectable()
export class InputImages {
  constructor(
    private readonly jobs: JobRepository,
    private readonly store: ObjectStore,
  ) {}

  /**
   * An input image's bytes, however it was given: inline base64, a multipart part, an upload (`POST /v1/uploads`) or
   * an earlier job's result of the same team. What cannot be used is a 400 naming the field.
   */
  async bytesOf(teamId: string, field: string, input: ImageInput, files: ReadonlyMap<string, Buffer>): Promise<Buffer> {
    const refused = (reason: string) => invalidRequest([{ field, reason }]);
    if (typeof input === 'string') return Buffer.from(input, 'base64');
    if ('file' in input) {
      const part = files.get(input.file);
      if (!part) throw refused(`no multipart part named ${input.file}`);
      return part;
    }
    const key = 'upload' in input ? uploadKey(teamId, input.upload) : await this.resultKeyOf(teamId, input.jobId, refused);
    try {
      if ((await this.store.stat(key)).size > MAX_IMAGE_BYTES) throw refused(`is larger than ${MAX_IMAGE_BYTES} bytes`);
      return await this.store.get(key);
    } catch (err) {
      if (err instanceof ObjectNotFound) {
        throw refused('upload' in input ? `no upload ${input.upload} (uploads are kept 24 h)` : `the result of job ${input.jobId} is gone`);
      }
      throw err instanceof StorageError && !(err instanceof ObjectNotFound) ? storageUnavailable('input images could not be read') : err;
    }
  }

  /** The object key of an earlier image result of the team (the job must have succeeded and kept its images). */
  private async resultKeyOf(teamId: string, jobId: string, refused: (reason: string) => Error): Promise<string> {
    const job = await this.jobs.get(jobId, teamId);
    if (!job) throw refused(`job ${jobId} not found`);
    if (job.status !== 'succeeded' || !job.resultKey) throw refused(`job ${jobId} has no image result (it is ${job.status})`);
    if (job.resultDeletedAt) throw refused(`the images of job ${jobId} were removed (retention)`);
    return job.resultKey;
  }
}

/** A file part of a multipart submit. */
export interface UploadedPart {
  fieldname: string;
  buffer: Buffer;
}

const PART_FIELD = /^(image|mask|images\.([01]))$/;

/**
 * A multipart submit: the JSON request in the `request` field, each image a part named after its field (image, mask,
 * images.0, images.1). The parts go into the request as `{ file }` inputs.
 */
export function fromMultipart(body: unknown, parts: readonly UploadedPart[]): { request: unknown; files: Map<string, Buffer> } {
  const raw = (body as { request?: unknown } | undefined)?.request;
  if (typeof raw !== 'string') throw invalidRequest([{ field: 'request', reason: 'a multipart submit carries the JSON request in a "request" field' }]);
  let request: Record<string, unknown>;
  try {
    request = JSON.parse(raw) as Record<string, unknown>;
  } catch {
    throw invalidRequest([{ field: 'request', reason: 'is not valid JSON' }]);
  }
  if (!request || typeof request !== 'object' || Array.isArray(request)) throw invalidRequest([{ field: 'request', reason: 'must be a JSON object' }]);
  const files = new Map<string, Buffer>();
  for (const part of parts) {
    const m = PART_FIELD.exec(part.fieldname);
    if (!m) throw invalidRequest([{ field: part.fieldname, reason: 'is not an image field (image, mask, images.0, images.1)' }]);
    if (files.has(part.fieldname)) throw invalidRequest([{ field: part.fieldname, reason: 'sent twice' }]);
    files.set(part.fieldname, part.buffer);
    if (m[2] === undefined) request[m[1]!] = { file: part.fieldname };
    else {
      const images = Array.isArray(request['images']) ? [...(request['images'] as unknown[])] : [];
      images[Number(m[2])] = { file: part.fieldname };
      request['images'] = Array.from(images, (v) => v ?? null);
    }
  }
  return { request, files };
}

/** What an Idempotency-Key is bound to: the request and the bytes of its parts. */
export function fingerprint(request: unknown, files: ReadonlyMap<string, Buffer>): string {
  const hash = createHash('sha256').update(JSON.stringify(request));
  for (const [name, bytes] of [...files].sort(([a], [b]) => a.localeCompare(b))) hash.update(`\0${name}\0`).update(bytes);
  return hash.digest('base64url');
}
