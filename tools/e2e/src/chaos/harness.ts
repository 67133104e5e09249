/**
 * The reliability harness: a platform whose services reach Postgres, Redis and S3 through fault proxies, workers as
 * child processes, clients that follow every job's event stream (reconnecting with Last-Event-ID), and the counts a
 * scenario is judged by — per job: how often it was sampled and its result stored (the workers' log lines), how many
 * terminal notifications its client received, and whether its image equals the engine's for its seed.
 */
import type { JobView, LocalRequest } from '@dimoo/contracts';
import type { PrismaClient } from '@dimoo/db';
import { createPrisma } from '@dimoo/db';
import type { Platform } from '@dimoo/platform';
import type { RgbImage } from '@dimoo/model';
import { decodeImage, encodePng } from '@dimoo/model';
import { ADMIN_KEY, ROOT, sleep, startPlatform, WorkerProcess } from '@dimoo/platform';
import type { LoadedModel } from '@dimoo/runtime';
import { encodeResult, finish, loadModel, newEngine, prepare, resolveLocal } from '@dimoo/runtime';

export interface Row {
  scenario: string;
  submitted: number;
  succeeded: number;
  /** failures by reason */
  failed: Record<string, number>;
  /** accepted, then neither finished nor failed (or succeeded without its result) */
  lost: number;
  /** jobs sampled more than once, and whether the scenario could cause it (a crash mid-job) */
  resampled: number;
  /** results stored more than once for one sampling */
  extraUploads: number;
  /** clients that got more than one terminal notification for a job, or missed one */
  notificationErrors: number;
  /** images equal to the engine's for their seed / images compared */
  pngs: string;
  figure: string;
}

type Stream = { events: { id: string; event: string }[]; terminal: number; reconnects: number };

export class Chaos {
  readonly workers: WorkerProcess[] = [];
  readonly streams = new Map<string, Stream>();
  readonly requests = new Map<string, { req: LocalRequest; image?: RgbImage }>();
  /** submits refused while a store was down (the client retried them) */
  refused = 0;
  private key = '';
  private stopFollowing = false;
  private readonly following: Promise<void>[] = [];
  private static model: Promise<LoadedModel> | null = null;

  private constructor(
    readonly p: Platform,
    readonly prisma: PrismaClient,
    readonly workerEnv: Record<string, string>,
  ) {}

  static async start(options: { apiEnv?: Record<string, string>; workerEnv?: Record<string, string> } = {}): Promise<Chaos> {
    const p = await startPlatform({
      faults: true,
      apiEnv: { OUTBOX_INTERVAL_MS: '500', REAPER_INTERVAL_MS: '1000', REAPER_STALE_MS: '10000', ...options.apiEnv },
    });
    const chaos = new Chaos(p, createPrisma(p.db.url), {
      ...p.workerEnv,
      LOCK_DURATION_MS: '5000',
      PROGRESS_INTERVAL_MS: '100',
      PREVIEW_EVERY_STEPS: '0',
      ...options.workerEnv,
    });
    const team = (await chaos.http('POST', '/v1/teams', ADMIN_KEY, { name: 'chaos' })) as { id: string };
    chaos.key = ((await chaos.http('POST', `/v1/teams/${team.id}/keys`, ADMIN_KEY, { name: 'chaos' })) as { key: string }).key;
    return chaos;
  }

  async http(method: string, path: string, key: string, body?: unknown): Promise<unknown> {
    const res = await fetch(`${this.p.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return res.json();
  }

  async startWorker(env: Record<string, string> = {}): Promise<WorkerProcess> {
    const w = new WorkerProcess({ ...this.workerEnv, ...env });
    this.workers.push(w);
    await w.ready();
    return w;
  }

  /**
   * Submits a job (retrying a 503, as a client honouring Retry-After would) and follows its event stream. An i2i job
   * takes `image` as its input.
   */
  async submit(req: LocalRequest, follow = true, image?: { png: Buffer; rgb: RgbImage }): Promise<string> {
    const body = JSON.stringify(image ? { ...req, images: [image.png.toString('base64')] } : req);
    for (;;) {
      const res = await fetch(`${this.p.url}/v1/jobs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${this.key}`, 'content-type': 'application/json' },
        body,
      }).catch(() => null);
      if (res?.status === 202) {
        const id = ((await res.json()) as JobView).id;
        this.requests.set(id, image ? { req, image: image.rgb } : { req });
        if (follow) this.following.push(this.follow(id));
        return id;
      }
      this.refused++;
      await sleep(res ? Number(res.headers.get('retry-after') ?? 1) * 200 : 300);
    }
  }

  /** Reads the job's event stream to its terminal event, reconnecting with Last-Event-ID whenever it breaks. */
  private async follow(id: string): Promise<void> {
    const s: Stream = { events: [], terminal: 0, reconnects: 0 };
    this.streams.set(id, s);
    while (!this.stopFollowing && s.terminal === 0) {
      const last = s.events.at(-1)?.id;
      try {
        const res = await fetch(`${this.p.url}/v1/jobs/${id}/events`, {
          headers: { authorization: `Bearer ${this.key}`, ...(last ? { 'last-event-id': last } : {}) },
        });
        if (res.status === 200 && res.body) {
          let buf = '';
          for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
            buf += Buffer.from(chunk).toString();
            let cut: number;
            while ((cut = buf.indexOf('\n\n')) >= 0) {
              const block = buf.slice(0, cut);
              buf = buf.slice(cut + 2);
              const field = (name: string) =>
                block
                  .split('\n')
                  .find((l) => l.startsWith(`${name}: `))
                  ?.slice(name.length + 2);
              const [eid, event] = [field('id'), field('event')];
              if (!eid || !event) continue;
              s.events.push({ id: eid, event });
              if (['completed', 'failed', 'canceled'].includes(event)) s.terminal++;
            }
          }
        }
      } catch {
        // the API went away mid-stream: reconnect below
      }
      if (s.terminal === 0) {
        s.reconnects++;
        await sleep(250);
      }
    }
  }

  /** Waits until every job is finished (or `timeoutMs` passes); returns the rows. */
  async settle(ids: string[], timeoutMs = 300_000): Promise<Map<string, { status: string; error: unknown; resultKey: string | null; attempts: number }>> {
    const t0 = Date.now();
    for (;;) {
      const rows = await this.prisma.job.findMany({
        where: { id: { in: ids } },
        select: { id: true, status: true, error: true, resultKey: true, attempts: true },
      });
      if (rows.every((r) => ['succeeded', 'failed', 'canceled'].includes(r.status)) || Date.now() - t0 > timeoutMs) {
        // give the streams a moment to deliver their terminal events
        const streamsDone = Date.now() + 10_000;
        while ([...this.streams.values()].some((s) => s.terminal === 0) && Date.now() < streamsDone) await sleep(100);
        this.stopFollowing = true;
        return new Map(rows.map((r) => [r.id, r]));
      }
      await sleep(200);
    }
  }

  /** Per job id: samplings and stored results, from every worker's log (killed ones included). */
  counts(): { sampled: Map<string, number>; stored: Map<string, number> } {
    const sampled = new Map<string, number>();
    const stored = new Map<string, number>();
    for (const w of this.workers) {
      const out = w.output.join('');
      for (const m of out.matchAll(/sampled ([0-9a-f-]{36}) \(/g)) sampled.set(m[1]!, (sampled.get(m[1]!) ?? 0) + 1);
      for (const m of out.matchAll(/stored the result of ([0-9a-f-]{36})/g)) stored.set(m[1]!, (stored.get(m[1]!) ?? 0) + 1);
    }
    return { sampled, stored };
  }

  /** The judged row of a scenario. `sampleSize` limits the PNG comparisons (each runs the engine in-process). */
  async row(scenario: string, ids: string[], figure: string, { sampleSize = Infinity, timeoutMs = 300_000, notifications = true } = {}): Promise<Row> {
    const rows = await this.settle(ids, timeoutMs);
    const { sampled, stored } = this.counts();
    const failed: Record<string, number> = {};
    let succeeded = 0;
    let lost = 0;
    for (const id of ids) {
      const r = rows.get(id);
      if (r?.status === 'succeeded' && r.resultKey) succeeded++;
      else if (r?.status === 'failed') {
        const reason = (r.error as { code?: string } | null)?.code ?? 'unknown';
        failed[reason] = (failed[reason] ?? 0) + 1;
      } else lost++;
    }
    const twice = ids.filter((id) => (sampled.get(id) ?? 0) > 1);
    const resampled = twice.length;
    // what happened to the jobs sampled twice, for the report
    for (const id of twice.slice(0, 5)) {
      const events = await this.prisma.jobEvent.findMany({ where: { jobId: id }, orderBy: { id: 'asc' }, select: { type: true, data: true } });
      const holders = this.workers.filter((w) => w.output.join('').includes(`sampled ${id}`)).map((w) => this.workers.indexOf(w));
      console.log(
        `   sampled twice: ${id} by worker(s) ${holders.join(', ')}: ${events
          .map((e) => `${e.type}${e.type === 'started' || e.type === 'retried' || e.type === 'queued' ? JSON.stringify(e.data) : ''}`)
          .filter((t) => !t.startsWith('progress'))
          .join(' → ')}`,
      );
    }
    const extraUploads = ids.filter((id) => (stored.get(id) ?? 0) > Math.max(1, sampled.get(id) ?? 0)).length;
    let notificationErrors = 0;
    if (notifications) {
      for (const id of ids) {
        const s = this.streams.get(id);
        const dbEvents = await this.prisma.jobEvent.findMany({
          where: { jobId: id, type: { notIn: ['enqueued', 'retried'] } },
          select: { id: true },
          orderBy: { id: 'asc' },
        });
        const got = new Set(s?.events.map((e) => e.id) ?? []);
        // exactly one terminal notification, no duplicate, and no event the stream should have carried is missing
        const missing = dbEvents.some((e) => !got.has(String(e.id)));
        if (!s || s.terminal !== 1 || s.events.length !== got.size || missing) notificationErrors++;
      }
    }
    const compared = ids.filter((id) => rows.get(id)?.status === 'succeeded').slice(0, sampleSize);
    let equal = 0;
    for (const id of compared) if (await this.pngMatches(id, rows.get(id)!.resultKey!)) equal++;
    return {
      scenario,
      submitted: ids.length,
      succeeded,
      failed,
      lost,
      resampled,
      extraUploads,
      notificationErrors,
      pngs: `${equal}/${compared.length}`,
      figure,
    };
  }

  private async pngMatches(id: string, key: string): Promise<boolean> {
    Chaos.model ??= loadModel(`${ROOT}/models/tiny`, { provider: 'cpu', allowCpuFallback: false });
    const model = await Chaos.model;
    const { req, image } = this.requests.get(id)!;
    const job = resolveLocal(model.manifest, req, { images: image ? [image] : [] });
    const seq = await prepare(model, 'reference', job);
    await newEngine(model).run([seq]);
    const out = await finish(model, seq);
    if (out.kind !== 'image') return false;
    const expected = (await encodeResult(job.job, out.rgb)).bytes;
    const res = await fetch(`${this.p.url}/v1/jobs/${id}/result`, { headers: { authorization: `Bearer ${this.key}` } });
    return key.length > 0 && Buffer.from(await res.arrayBuffer()).equals(expected);
  }

  /** Waits until `n` jobs of `ids` are running past their first step. */
  async running(ids: string[], n = 1, timeoutMs = 60_000): Promise<void> {
    const t0 = Date.now();
    while ((await this.prisma.job.count({ where: { id: { in: ids }, status: 'running', step: { gt: 0 } } })) < n) {
      if (Date.now() - t0 > timeoutMs) throw new Error('no job started running');
      await sleep(50);
    }
  }

  async close(): Promise<void> {
    this.stopFollowing = true;
    for (const w of this.workers) await w.kill('SIGKILL');
    await Promise.race([Promise.allSettled(this.following), sleep(5000)]);
    await this.prisma.$disconnect();
    await this.p.close();
  }
}

/** t2i requests with distinct seeds: `n` of them, `steps` each, guidance on (two rows per job). */
export const t2i = (n: number, steps: number, seed0 = 1): Extract<LocalRequest, { task: 't2i' }>[] =>
  Array.from({ length: n }, (_, i) => ({
    task: 't2i',
    prompt: ['a red circle at the top left', 'a blue square at the center', 'a green triangle at the bottom right'][i % 3]!,
    seed: seed0 + i,
    steps,
    cfg: 1,
    temperature: 1,
  }));

/** i2i edits of one 128² input image (a red square on black), distinct seeds. */
export async function edits(n: number, steps: number, seed0 = 100): Promise<{ reqs: LocalRequest[]; image: { png: Buffer; rgb: RgbImage } }> {
  const data = new Uint8Array(128 * 128 * 3);
  for (let y = 40; y < 88; y++) for (let x = 40; x < 88; x++) data[(y * 128 + x) * 3] = 220;
  const png = await encodePng({ width: 128, height: 128, data });
  const reqs: LocalRequest[] = Array.from({ length: n }, (_, i) => ({
    task: 'i2i',
    prompt: 'make it blue',
    editType: 'edit',
    seed: seed0 + i,
    steps,
    cfg: 1,
    cfgImage: 1,
  }));
  return { reqs, image: { png, rgb: await decodeImage(png) } };
}
