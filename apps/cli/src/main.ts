/**
 * dimoo: the command line of DiMOO Serve (`npm run dimoo -- <command>`).
 *
 * Over HTTP, through the SDK (--url or DIMOO_URL, default http://127.0.0.1:8080; --key or DIMOO_API_KEY):
 *   generate "<prompt>" -o out.png                          text to image
 *   edit --image in.png "<instruction>" -o out.png          image to image (--type subject|control|style|dense|multiView)
 *   paint --image in.png --mask mask.png "<prompt>" -o out.png
 *   ask --image in.png "<question>"                         prints the answer
 *   jobs ls | get <id> | cancel <id> | rm <id>
 * Job commands show progress on stderr (a bar on a terminal, lines otherwise) and save previews with --previews DIR.
 *
 * In-process, no service (the engine on a model directory): local generate | local understand (see local.ts).
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import type { JobRequest } from '@dimoo/sdk';
import { withImages } from '@dimoo/sdk';
import type { Connection, ImageJobOptions, JobOptions } from './remote';
import { answerOf, connect, DEFAULT_URL, describeError, jobTable, outputFormat, runJob, samplingFields, saveResult } from './remote';

const EDIT_TYPES = ['edit', 'subject', 'control', 'style', 'dense', 'multiView'] as const;
const DENSE_TARGETS = ['canny', 'hed', 'depth', 'normal', 'pose', 'segmentation'] as const;
const VIEWS = ['back', 'left', 'right', 'top', 'bottom'] as const;

const integer = (v: string) => {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError('a whole number');
  return Number(v);
};
const number = (v: string) => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('a number');
  return n;
};

/** --url and --key, on every command that calls the API (they may come anywhere after the command). */
const withConnection = (cmd: Command) =>
  cmd
    .addOption(new Option('--url <url>', `the API (default ${DEFAULT_URL})`).env('DIMOO_URL'))
    .addOption(new Option('--key <key>', 'an API key').env('DIMOO_API_KEY'));

/** The options of every job command. */
const jobCommand = (cmd: Command, image: boolean) => {
  withConnection(cmd)
    .option('--seed <n>', 'random seed (drawn and reported when omitted)', integer)
    .option('--steps <n>', 'sampling steps (the model default when omitted)', integer)
    .option('--cfg <w>', 'guidance scale', number)
    .option('--temperature <t>', 'sampling temperature', number)
    .addOption(new Option('--priority <p>', "order among the team's waiting jobs").choices(['high', 'normal', 'low']))
    .option('--idempotency-key <key>', 'retrying with the same key answers the first job')
    .option('--previews <dir>', 'save preview images there as they arrive')
    .option('--timeout <s>', 'seconds to wait for the job', integer, 600)
    .option('--no-wait', 'print the job id and leave it running');
  if (image) {
    cmd.option('-o, --output <file>', 'where to write the image (default: <job id>.<format>)');
    cmd.addOption(new Option('--format <format>', 'result format (default: from the output file name, else png)').choices(['png', 'webp', 'jpeg']));
  }
  return cmd;
};

/** Runs an image job to its end and writes its result. */
async function imageJob(request: Record<string, unknown>, o: ImageJobOptions): Promise<void> {
  const client = connect(o);
  const job = await runJob(client, { ...request, ...samplingFields(o), ...outputFormat(o) } as JobRequest, o);
  if (job) await saveResult(client, job, o.output);
}

export function program(): Command {
  const dimoo = new Command('dimoo')
    .description('DiMOO Serve from the command line: jobs over HTTP (generate, edit, paint, ask, jobs), or in-process (local)')
    .enablePositionalOptions()
    .showHelpAfterError();

  jobCommand(dimoo.command('generate').description('text to image').argument('<prompt>'), true)
    .option('--width <px>', 'image width', integer)
    .option('--height <px>', 'image height', integer)
    .action(async (prompt: string, o: ImageJobOptions & { width?: number; height?: number }) => {
      await imageJob({ task: 't2i', prompt, ...(o.width ? { width: o.width } : {}), ...(o.height ? { height: o.height } : {}) }, o);
    });

  jobCommand(dimoo.command('edit').description('image to image: an edit (or --type subject, control, style, dense, multiView)'), true)
    .argument('[instruction]', 'what to do (dense and multiView take none)')
    .requiredOption('--image <file>', 'the input image')
    .addOption(new Option('--type <editType>', 'the kind of image-to-image job').choices(EDIT_TYPES).default('edit'))
    .option('--style-image <file>', 'type style: the style reference')
    .addOption(new Option('--target <map>', 'type dense: the map to make').choices(DENSE_TARGETS))
    .addOption(new Option('--view <view>', 'type multiView: the view to make').choices(VIEWS))
    .action(
      async (instruction: string | undefined, o: ImageJobOptions & { image: string; type: string; styleImage?: string; target?: string; view?: string }) => {
        const images = [o.image, ...(o.styleImage ? [o.styleImage] : [])];
        const request = await withImages<JobRequest>({
          task: 'i2i',
          editType: o.type as (typeof EDIT_TYPES)[number],
          images,
          ...(instruction !== undefined ? { prompt: instruction } : {}),
          ...(o.target ? { target: o.target as (typeof DENSE_TARGETS)[number] } : {}),
          ...(o.view ? { view: o.view as (typeof VIEWS)[number] } : {}),
        });
        await imageJob(request, o);
      },
    );

  jobCommand(dimoo.command('paint').description('regenerate the masked part of an image (white: regenerated)'), true)
    .argument('<prompt>')
    .requiredOption('--image <file>', 'the input image')
    .requiredOption('--mask <file>', 'the mask, same size as the image')
    .action(async (prompt: string, o: ImageJobOptions & { image: string; mask: string }) => {
      await imageJob(await withImages<JobRequest>({ task: 'paint', prompt, image: o.image, mask: o.mask }), o);
    });

  jobCommand(dimoo.command('ask').description('a question about an image; prints the answer'), false)
    .argument('<question>')
    .requiredOption('--image <file>', 'the image')
    .action(async (question: string, o: JobOptions & { image: string }) => {
      const client = connect(o);
      const request = await withImages<JobRequest>({ task: 'mmu', question, image: o.image });
      const job = await runJob(client, { ...request, ...samplingFields(o) }, o);
      if (job) process.stdout.write(`${await answerOf(client, job)}\n`);
    });

  const jobs = dimoo.command('jobs').description("the team's jobs");
  withConnection(jobs.command('ls').description('jobs, newest first'))
    .option('--status <list>', 'only these statuses (comma-separated)')
    .option('--task <list>', 'only these tasks (comma-separated)')
    .option('--limit <n>', 'at most this many', integer, 20)
    .option('--all', 'every page')
    .option('--json', 'JSON, one job a line')
    .action(async (o: Connection & { status?: string; task?: string; limit: number; all?: boolean; json?: boolean }) => {
      const client = connect(o);
      const query = { ...(o.status ? { status: o.status } : {}), ...(o.task ? { task: o.task } : {}) };
      const list = [];
      if (o.all) for await (const job of client.listAll({ ...query, limit: 100 })) list.push(job);
      else list.push(...(await client.list({ ...query, limit: o.limit })).data);
      process.stdout.write(o.json ? list.map((j) => `${JSON.stringify(j)}\n`).join('') : `${jobTable(list)}\n`);
    });
  withConnection(jobs.command('get').description('a job, as JSON').argument('<id>')).action(async (id: string, o: Connection) => {
    process.stdout.write(`${JSON.stringify(await connect(o).get(id), null, 2)}\n`);
  });
  withConnection(jobs.command('cancel').description('cancel a queued or running job').argument('<id>')).action(async (id: string, o: Connection) => {
    const job = await connect(o).cancel(id);
    process.stdout.write(`${job.id} ${job.status}\n`);
  });
  withConnection(jobs.command('rm').description('delete a finished job and its images').argument('<id>')).action(async (id: string, o: Connection) => {
    await connect(o).delete(id);
    process.stdout.write(`${id} deleted\n`);
  });

  dimoo
    .command('local')
    .description('in-process, no service: local generate --prompt TEXT [--out FILE] | local understand --image FILE --question TEXT')
    .argument('[args...]')
    .passThroughOptions()
    .allowUnknownOption()
    .helpOption(false)
    .action(async (args: string[]) => {
      // loaded only here: the engine and onnxruntime-node are not needed over HTTP
      const { runLocal } = await import('./local');
      await runLocal(args);
    });
  return dimoo;
}

if (require.main === module) {
  program()
    .parseAsync(process.argv)
    .catch((err: unknown) => {
      process.stderr.write(`error: ${describeError(err)}\n`);
      process.exit(1);
    });
}
