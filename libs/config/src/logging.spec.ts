/** The log line every process writes: base fields, the scope's fields (a job's), credentials removed, the pretty form. */
import { Writable } from 'node:stream';
import type { LoggingEnv } from './logging';
import { createLogger, LoggingEnvSchema, logFields, prettyLine, withLogFields } from './logging';

function capture(env: Partial<LoggingEnv> = {}, base: Record<string, unknown> = {}) {
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      raw.push(chunk.toString());
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  const logger = createLogger('dimoo-test', LoggingEnvSchema.parse(env), { base, destination });
  return { logger, lines, raw };
}

describe('createLogger', () => {
  it('writes one JSON object per line with the base fields, the level by name and an ISO time', () => {
    const { logger, lines } = capture({}, { worker: 'w-1' });
    logger.info('ready');
    expect(lines).toEqual([
      {
        level: 'info',
        time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        service: 'dimoo-test',
        pid: process.pid,
        hostname: expect.any(String),
        worker: 'w-1',
        msg: 'ready',
      },
    ]);
  });

  it("adds the scope's fields to every line inside it, awaited continuations included, and nothing outside", async () => {
    const { logger, lines } = capture();
    await withLogFields({ jobId: 'j-1', teamId: 't-1' }, async () => {
      logger.info('taken');
      await new Promise((r) => setTimeout(r, 5));
      await withLogFields({ deliveryId: 'd-1' }, () => Promise.resolve(logger.warn('nested')));
      expect(logFields()).toEqual({ jobId: 'j-1', teamId: 't-1' });
    });
    logger.info('after');
    expect(lines.map((l) => [l['msg'], l['jobId'], l['teamId'], l['deliveryId']])).toEqual([
      ['taken', 'j-1', 't-1', undefined],
      ['nested', 'j-1', 't-1', 'd-1'],
      ['after', undefined, undefined, undefined],
    ]);
  });

  it('removes credentials from a logged request or headers object', () => {
    const { logger, raw } = capture();
    const headers = { authorization: 'Bearer dimoo_secret', 'x-api-key': 'dimoo_other', cookie: 'session=abc', accept: 'application/json' };
    logger.info({ req: { method: 'GET', headers } }, 'a request');
    logger.info({ headers }, 'headers');
    expect(raw.join('')).not.toMatch(/dimoo_secret|dimoo_other|session=abc/);
    expect(raw.join('')).toContain('application/json');
  });

  it('honours LOG_LEVEL; LOG_LEVEL and LOG_FORMAT refuse unknown values', () => {
    const { logger, lines } = capture({ LOG_LEVEL: 'warn' });
    logger.info('dropped');
    logger.warn('kept');
    expect(lines.map((l) => l['msg'])).toEqual(['kept']);
    expect(LoggingEnvSchema.parse({})).toEqual({ LOG_LEVEL: 'info', LOG_FORMAT: 'json' });
    expect(LoggingEnvSchema.safeParse({ LOG_LEVEL: 'loud', LOG_FORMAT: 'xml' }).error?.issues.map((i) => i.path[0])).toEqual(['LOG_LEVEL', 'LOG_FORMAT']);
  });
});

describe('prettyLine', () => {
  it('shows a JSON line as time, level, context, message and the other fields; an error with its stack', () => {
    const line = JSON.stringify({
      level: 'warn',
      time: '2026-12-01T10:20:30.456Z',
      service: 's',
      pid: 1,
      hostname: 'h',
      context: 'Worker',
      msg: 'slow',
      jobId: 'j-1',
      n: 2,
    });
    expect(prettyLine(line)).toBe('10:20:30.456 WARN  [Worker] slow jobId=j-1 n=2\n');
    const failed = JSON.stringify({ level: 'error', time: '2026-12-01T10:20:30.456Z', msg: 'boom', err: { message: 'x', stack: 'Error: x\n    at y' } });
    expect(prettyLine(failed)).toBe('10:20:30.456 ERROR boom\nError: x\n    at y\n');
    expect(prettyLine('not json')).toBe('not json\n');
  });
});
