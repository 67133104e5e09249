/**
 * bull-board, read-only, at /admin/queues/board on the API's own server, for admins. A browser navigating there cannot
 * send the bearer key, so an admin asks `POST /v1/admin/board-session` for a one-time URL (a random token, valid 60 s,
 * held in Redis so any API replica redeems it); opening it sets an HttpOnly, SameSite=Strict cookie for the board's
 * path only (an hour) and redirects to the board. Every board request needs that cookie or an admin key (401 / 403).
 * A session remembers the key that opened it and ends as soon as that key is revoked, expires or loses the admin scope
 * (checked on every request; a session of the bootstrap ADMIN_API_KEY, which has no row to revoke, lasts its hour).
 *
 * Cookie authentication has no CSRF consequence here: the board is read-only (each queue's `readOnlyMode`, and this
 * mount refuses every method but GET and HEAD), so a forged request can change nothing; SameSite=Strict keeps the
 * cookie off cross-site requests all the same.
 */
import type { OnApplicationShutdown } from '@nestjs/common';
import { HttpStatus, Inject, Injectable } from '@nestjs/common';
import { getQueueToken } from '@nestjs/bullmq';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import type { Queue } from 'bullmq';
import type { NextFunction, Request, Response } from 'express';
import { Redis } from 'ioredis';
import { createHash, randomBytes } from 'node:crypto';
import { ApiKeyRepository } from '@dimoo/db';
import { QUEUE_NAMES, redisOptions } from '@dimoo/queue';
import { ApiKeyGuard } from '../auth/api-key.guard';
import { problemBody, problemOf, ProblemError } from '../common/problem';
import type { ApiEnv } from '../config';
import { API_ENV } from '../tokens';

export const BOARD_PATH = '/admin/queues/board';
/** Where the one-time URL points: redeemed there, then redirected to the board. */
const REDEEM_PATH = `${BOARD_PATH}/session`;
const COOKIE = 'dimoo_board';
/** How long a one-time URL can be opened. */
export const BOARD_TOKEN_TTL_MS = 60_000;
/** How long the board cookie (and its session in Redis) lasts. */
export const BOARD_SESSION_TTL_MS = 60 * 60 * 1000;

/** Tokens and sessions are kept by their hash: what Redis holds opens nothing. */
const digest = (secret: string) => createHash('sha256').update(secret).digest('base64url');
const secret = () => randomBytes(32).toString('base64url');
/** The owner of a session opened with the bootstrap key (key ids are UUIDs: no clash). */
const BOOTSTRAP = 'bootstrap';

/** One-time board tokens and the sessions they open, in Redis (every API replica sees them). */
@Injectable()
export class BoardSessions implements OnApplicationShutdown {
  private readonly redis: Redis;
  private readonly prefix: string;

  constructor(@Inject(API_ENV) env: ApiEnv) {
    // no offline queue: with Redis down a board request fails at once (503) instead of hanging
    this.redis = new Redis(redisOptions(env.REDIS_URL, { offlineQueue: false }));
    this.redis.on('error', () => undefined);
    this.prefix = `${env.QUEUE_PREFIX}:board`;
  }

  /** A new one-time URL (relative to the API) that opens the board, for the key `keyId` (null: the bootstrap key). */
  async open(keyId: string | null): Promise<string> {
    const token = secret();
    await this.redis.set(`${this.prefix}:token:${digest(token)}`, keyId ?? BOOTSTRAP, 'PX', BOARD_TOKEN_TTL_MS);
    return `${REDEEM_PATH}?token=${token}`;
  }

  /** Redeems a token once (GETDEL: a second use finds nothing): a new session id, or null. */
  async redeem(token: string): Promise<string | null> {
    const owner = await this.redis.getdel(`${this.prefix}:token:${digest(token)}`);
    if (!owner) return null;
    const session = secret();
    await this.redis.set(`${this.prefix}:session:${digest(session)}`, owner, 'PX', BOARD_SESSION_TTL_MS);
    return session;
  }

  /** The key a live session was opened with (null: the bootstrap key), or undefined for none. */
  async owner(session: string): Promise<string | null | undefined> {
    const owner = await this.redis.get(`${this.prefix}:session:${digest(session)}`);
    return owner === null ? undefined : owner === BOOTSTRAP ? null : owner;
  }

  onApplicationShutdown(): void {
    this.redis.disconnect();
  }
}

function cookieOf(req: Request, name: string): string | null {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

function refuse(res: Response, err: unknown): void {
  const problem =
    problemOf(err) ??
    new ProblemError(
      HttpStatus.SERVICE_UNAVAILABLE,
      'board-unavailable',
      'Board unavailable',
      'the board session cannot be checked now (Redis or Postgres); retry later',
      undefined,
      5,
    );
  if (problem.retryAfter !== undefined) res.setHeader('Retry-After', String(problem.retryAfter));
  res
    .status(problem.status)
    .type('application/problem+json')
    .send(JSON.stringify(problemBody(problem)));
}

const unauthorized = () =>
  new ProblemError(HttpStatus.UNAUTHORIZED, 'unauthorized', 'Unauthorized', 'open the board through POST /v1/admin/board-session, or send an admin key');

/** Mounts the board on the API's Express server (called by `createApi`, before the application starts listening). */
export function mountBoard(app: NestExpressApplication): void {
  const sessions = app.get(BoardSessions);
  const guard = app.get(ApiKeyGuard);
  const keys = app.get(ApiKeyRepository);
  const generation = app.get<Queue>(getQueueToken(QUEUE_NAMES.generation));
  const board = new ExpressAdapter().setBasePath(BOARD_PATH);
  createBullBoard({
    queues: [new BullMQAdapter(generation, { readOnlyMode: true })],
    serverAdapter: board,
    options: { uiConfig: { boardTitle: 'DiMOO Serve' } },
  });

  app.use(REDEEM_PATH, (req: Request, res: Response, next: NextFunction) => {
    if (req.method !== 'GET' || req.path !== '/') return next();
    const token = typeof req.query['token'] === 'string' ? req.query['token'] : '';
    sessions
      .redeem(token)
      .then((session) => {
        if (!session) throw new ProblemError(HttpStatus.UNAUTHORIZED, 'unauthorized', 'Unauthorized', 'this board link was used already or has expired');
        res.cookie(COOKIE, session, { httpOnly: true, sameSite: 'strict', path: BOARD_PATH, maxAge: BOARD_SESSION_TTL_MS, secure: req.secure });
        res.setHeader('Cache-Control', 'no-store');
        res.redirect(303, `${BOARD_PATH}/`);
      })
      .catch((err: unknown) => refuse(res, err));
  });

  app.use(BOARD_PATH, (req: Request, res: Response, next: NextFunction) => {
    void (async () => {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        throw new ProblemError(HttpStatus.METHOD_NOT_ALLOWED, 'method-not-allowed', 'Method not allowed', 'the queue board is read-only');
      }
      const session = cookieOf(req, COOKIE);
      const owner = session ? await sessions.owner(session) : undefined;
      if (owner === null || (owner !== undefined && (await keys.stillHolds(owner, 'admin')))) return;
      if (!req.headers.authorization && !req.headers['x-api-key']) throw unauthorized();
      const caller = await guard.callerOf(req);
      if (!caller.scopes.includes('admin')) throw new ProblemError(HttpStatus.FORBIDDEN, 'forbidden', 'Forbidden', 'this key lacks the admin scope');
    })().then(
      () => next(),
      (err: unknown) => refuse(res, err),
    );
  });
  app.use(BOARD_PATH, board.getRouter());
}
