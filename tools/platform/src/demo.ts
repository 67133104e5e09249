/**
 * The README's main job: start the whole service on this machine — Postgres (a fresh database, migrated), a private
 * Redis, an S3-protocol server, the API and one worker on the embedded tiny model — submit a prompt through the HTTP
 * API, wait for the job, save the PNG and say where, with the latency split. Then shut everything down.
 *   npm run demo -- "a red circle at the top left" [--out out/demo.png] [--seed 1]
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { JobView } from '@dimoo/contracts';
import { ADMIN_KEY, startPlatform } from './platform';
import { sleep, WorkerProcess } from './processes';

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { out: { type: 'string', default: 'out/demo.png' }, seed: { type: 'string', default: '1' } },
  });
  const prompt = positionals.join(' ') || 'a red circle at the top left';
  console.log('starting Postgres database, Redis, S3 server, API and worker (tiny model)…');
  const p = await startPlatform();
  const worker = new WorkerProcess(p.workerEnv);
  try {
    await worker.ready();
    const post = async (path: string, key: string, body: unknown) => {
      const res = await fetch(`${p.url}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
      return res;
    };
    const team = (await (await post('/v1/teams', ADMIN_KEY, { name: 'demo' })).json()) as { id: string };
    const { key } = (await (await post(`/v1/teams/${team.id}/keys`, ADMIN_KEY, { name: 'demo' })).json()) as { key: string };
    const t0 = performance.now();
    const submitted = await post('/v1/jobs', key, { task: 't2i', prompt, seed: Number(values.seed) });
    const location = submitted.headers.get('location')!;
    console.log(`POST /v1/jobs → ${submitted.status}, Location: ${location}`);
    let job: JobView;
    for (;;) {
      job = (await (await fetch(`${p.url}${location}`, { headers: { authorization: `Bearer ${key}` } })).json()) as JobView;
      if (['succeeded', 'failed', 'canceled'].includes(job.status)) break;
      await sleep(20);
    }
    if (job.status !== 'succeeded') throw new Error(`job ${job.status}: ${JSON.stringify(job.error)}`);
    const png = Buffer.from(await (await fetch(`${p.url}${location}/result`, { headers: { authorization: `Bearer ${key}` } })).arrayBuffer());
    const total = performance.now() - t0;
    const out = resolve(values.out);
    await mkdir(dirname(out), { recursive: true });
    await writeFile(out, png);
    const t = job.timings ?? {};
    const queueWait = Date.parse(job.startedAt!) - Date.parse(job.createdAt);
    console.log(`wrote ${out} (${png.length} bytes; model ${job.model.name} ${job.model.checksum?.slice(0, 12)}, seed ${job.seed})`);
    console.log(
      `latency ${total.toFixed(0)} ms end to end: queue wait ${queueWait} ms, prepare ${t['prepareMs']?.toFixed(1)} ms, sampling ${t['samplingMs']?.toFixed(1)} ms (${t['steps']} steps), decode+PNG ${t['decodeMs']?.toFixed(1)} ms, upload ${t['uploadMs']?.toFixed(1)} ms`,
    );
  } finally {
    await worker.kill('SIGTERM');
    await p.close();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
