/**
 * npm run test:chaos — every reliability scenario (issue 11) on a fresh platform each, then the table;
 * npm run test:chaos:ci — the CI subset (≤ 3 minutes); --only <text> runs the scenarios whose name contains it.
 * Exits non-zero when a row loses a job, samples or stores one twice without need, notifies wrongly or makes an image
 * that is not the engine's for its seed.
 */
import { parseArgs } from 'node:util';
import type { Row } from './harness';
import { SCENARIOS } from './scenarios';

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { ci: { type: 'boolean', default: false }, only: { type: 'string' } } });
  const chosen = SCENARIOS.filter((s) => (values.ci ? s.ci : true) && (!values.only || s.name.includes(values.only)));
  const rows: (Row & { ok: boolean })[] = [];
  const t0 = Date.now();
  for (const s of chosen) {
    const started = Date.now();
    console.log(`== ${s.name}`);
    const row = await s.run();
    const [equal, compared] = row.pngs.split('/').map(Number);
    const ok = row.lost === 0 && (s.crashes || row.resampled === 0) && row.extraUploads === 0 && row.notificationErrors === 0 && equal === compared;
    rows.push({ ...row, ok });
    console.log(`   ${JSON.stringify(row)} (${((Date.now() - started) / 1000).toFixed(0)} s) ${ok ? 'ok' : 'FAILED'}`);
  }
  const failed = (f: Record<string, number>) =>
    Object.entries(f)
      .map(([k, v]) => `${v} ${k}`)
      .join(', ') || '0';
  console.log(
    `\n| scenario | submitted | succeeded | failed (reasons) | lost | sampled again | stored twice | notification errors | images = engine's | figure | verdict |`,
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(
      `| ${r.scenario} | ${r.submitted} | ${r.succeeded} | ${failed(r.failed)} | ${r.lost} | ${r.resampled} | ${r.extraUploads} | ${r.notificationErrors} | ${r.pngs} | ${r.figure} | ${r.ok ? 'ok' : '**FAILED**'} |`,
    );
  }
  console.log(`\n${rows.length} scenario(s) in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  if (rows.some((r) => !r.ok)) process.exit(1);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
