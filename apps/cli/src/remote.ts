/**
 * The CLI's commands over HTTP, through the SDK (@dimoo/sdk): submit a job, follow its event stream (progress,
 * previews), then write its result (the 303 followed to the object store without the API key) or print its answer.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, extname, join, resolve } from 'node:path';
import type { JobRequest, JobView } from '@dimoo/sdk';
import { DimooClient, DimooError, isFinished } from '@dimoo/sdk';
import { Progress } from './progress';

export const DEFAULT_URL = 'http://127.0.0.1:8080';

/** A failure to report in one line, without a stack. */
export class CliError extends Error {}

export interface Connection {
  url?: string;
  key?: string;
}

export function connect(options: Connection): DimooClient {
  const key = options.key ?? process.env['DIMOO_API_KEY'];
  if (!key) throw new CliError('no API key: pass --key or set DIMOO_API_KEY');
  return new DimooClient({ baseUrl: options.url ?? process.env['DIMOO_URL'] ?? DEFAULT_URL, apiKey: key });
}

/** What every job command takes besides its task's fields. */
export interface JobOptions extends Connection {
  seed?: number;
  steps?: number;
  cfg?: number;
  temperature?: number;
  priority?: 'high' | 'normal' | 'low';
  idempotencyKey?: string;
  previews?: string;
  /** seconds to wait for the job */
  timeout: number;
  /** false: print the job id and leave it running */
  wait: boolean;
}

export interface ImageJobOptions extends JobOptions {
  output?: string;
  format?: 'png' | 'webp' | 'jpeg';
}

/** The request fields the job options set. */
export function samplingFields(o: JobOptions): Record<string, unknown> {
  const fields: Record<string, unknown> = { seed: o.seed, steps: o.steps, cfg: o.cfg, temperature: o.temperature, priority: o.priority };
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
}

const FORMAT_OF_EXTENSION: Record<string, 'png' | 'webp' | 'jpeg'> = { '.png': 'png', '.webp': 'webp', '.jpg': 'jpeg', '.jpeg': 'jpeg' };
const EXTENSION_OF_TYPE: Record<string, string> = { 'image/png': 'png', 'image/webp': 'webp', 'image/jpeg': 'jpg' };

/** The result format: --format, else the output file's extension, else the API's default (PNG). */
export function outputFormat(o: ImageJobOptions): Record<string, unknown> {
  const format = o.format ?? (o.output ? FORMAT_OF_EXTENSION[extname(o.output).toLowerCase()] : undefined);
  return format ? { outputFormat: format } : {};
}

/** Submits the job and follows it to its end: progress and previews on the way. Null with --no-wait. */
export async function runJob(client: DimooClient, request: JobRequest, o: JobOptions): Promise<JobView | null> {
  const submitted = await client.submit(request, o.idempotencyKey ? { idempotencyKey: o.idempotencyKey } : {});
  if (!o.wait) {
    process.stdout.write(`${submitted.id}\n`);
    return null;
  }
  const progress = new Progress(process.stderr, `job ${submitted.id.slice(0, 8)}`);
  progress.note(`${submitted.status} (${submitted.task}${submitted.seed === null ? '' : `, seed ${submitted.seed}`})`);
  const interrupted = () => {
    progress.note('interrupted: canceling');
    void client
      .cancel(submitted.id)
      .catch(() => undefined)
      .finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  const t0 = Date.now();
  const timeout = AbortSignal.timeout(o.timeout * 1000);
  try {
    if (!isFinished(submitted)) {
      try {
        for await (const e of client.events(submitted.id, { signal: timeout })) {
          if (e.event === 'started') progress.note(`started${e.data.attempt && e.data.attempt > 1 ? ` (attempt ${e.data.attempt})` : ''}`);
          else if (e.event === 'queued' && e.data.reason) progress.note(`queued again: ${e.data.reason}`);
          else if (e.event === 'progress') progress.update(e.data.step, e.data.steps);
          else if (e.event === 'preview' && o.previews) {
            const file = join(o.previews, `${submitted.id}-step-${String(e.data.step).padStart(4, '0')}.png`);
            await mkdir(o.previews, { recursive: true });
            await writeFile(file, await client.preview(submitted.id, e.data.step));
            progress.note(`preview ${file}`);
          }
        }
      } catch (err) {
        if (timeout.aborted) throw new CliError(`job ${submitted.id} did not finish in ${o.timeout} s; it keeps running (dimoo jobs get ${submitted.id})`);
        // the stream is a convenience: the job is still there to wait for
        progress.note(`event stream lost (${err instanceof Error ? err.message : String(err)}): waiting`);
      }
    }
    const job = await client.wait(submitted.id, { timeoutMs: Math.max(1000, o.timeout * 1000 - (Date.now() - t0)) });
    // progress is reported at intervals: show where the job ended
    if (job.steps !== null && job.step > 0) progress.update(job.step, job.steps);
    progress.done();
    if (job.status !== 'succeeded') {
      throw new CliError(`job ${job.id} ${job.status}${job.error ? `: ${job.error.message}${job.error.field ? ` (${job.error.field})` : ''}` : ''}`);
    }
    progress.note(`succeeded in ${elapsed(job)}`);
    return job;
  } finally {
    process.off('SIGINT', interrupted);
  }
}

const elapsed = (job: JobView) => (job.finishedAt ? `${((Date.parse(job.finishedAt) - Date.parse(job.startedAt ?? job.createdAt)) / 1000).toFixed(1)} s` : '?');

/** Writes an image job's result to `output` (default: <job id>.<format>) and says where. */
export async function saveResult(client: DimooClient, job: JobView, output: string | undefined): Promise<void> {
  const { data, contentType } = await client.downloadResult(job.id);
  const file = resolve(output ?? `${job.id}.${EXTENSION_OF_TYPE[contentType.split(';')[0]!] ?? 'bin'}`);
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, data);
  process.stdout.write(`wrote ${file} (${contentType}, ${data.length} bytes, job ${job.id}, seed ${job.seed ?? '?'})\n`);
}

/** The answer of an understanding job. */
export async function answerOf(client: DimooClient, job: JobView): Promise<string> {
  if (job.result?.kind === 'text') return job.result.text;
  return (await client.downloadResult(job.id)).data.toString('utf8');
}

/** One line (and the refused fields) for an error, for stderr. */
export function describeError(err: unknown): string {
  if (err instanceof DimooError) {
    const fields = err.problem?.errors ?? [];
    const head = fields.length > 0 ? `${err.status} ${err.problem!.title}` : err.message;
    return `${head}${fields.map((e) => `\n  ${e.field}: ${e.reason}`).join('')}${err.retryAfter !== null ? `\n  retry after ${err.retryAfter} s` : ''}`;
  }
  if (err instanceof CliError) return err.message;
  if (err instanceof TypeError && err.message === 'fetch failed') {
    return `cannot reach the API (${String((err.cause as Error | undefined)?.message ?? err.cause)})`;
  }
  // DIMOO_DEBUG=1: with the stack
  return err instanceof Error ? ((process.env['DIMOO_DEBUG'] ? err.stack : undefined) ?? err.message) : String(err);
}

/** `jobs ls` as a table. */
export function jobTable(jobs: JobView[]): string {
  const rows = jobs.map((j) => [j.id, j.task, j.status, `${Math.round(j.progress * 100)}%`, j.createdAt]);
  const header = ['ID', 'TASK', 'STATUS', 'PROGRESS', 'CREATED'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows]
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
