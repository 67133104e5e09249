/**
 * Every /v1 route takes an API key (Authorization: Bearer … or X-API-Key); the key's team scopes what it sees, its
 * scopes what it may do (`@RequireScope`: submit, read, admin). The bootstrap ADMIN_API_KEY (and, while a rotation
 * rolls out, ADMIN_API_KEY_PREVIOUS) has every scope and no team.
 */
import type { CanActivate, ExecutionContext } from '@nestjs/common';
import { createParamDecorator, HttpStatus, Inject, Injectable, SetMetadata } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { ApiKeyScope } from '@dimoo/contracts';
import { API_KEY_SCOPES, SUBMIT_AS_HEADER } from '@dimoo/contracts';
import type { TeamScope } from '@dimoo/db';
import { ApiKeyRepository, EVERY_TEAM, isUuid } from '@dimoo/db';
import { invalidRequest, ProblemError, submitAsForbidden } from '../common/problem';
import { API_ENV } from '../tokens';
import type { ApiEnv } from '../config';
import type { Caller } from './caches';
import { CACHE_ENTRIES, KeyCache } from './caches';

export type { Caller } from './caches';

const SCOPE = 'dimoo:scope';
/** The scope a route needs (on a handler, or on a controller for all its handlers). */
export const RequireScope = (scope: ApiKeyScope) => SetMetadata(SCOPE, scope);
export const AdminOnly = () => RequireScope('admin');

/** The caller's team; a key without one (the bootstrap admin key) is refused with 403 on team routes. */
export function teamOf(caller: Caller): string {
  if (!caller.teamId) throw new ProblemError(HttpStatus.FORBIDDEN, 'no-team', 'No team', 'this key belongs to no team; use a team key');
  return caller.teamId;
}

/**
 * Whose jobs the caller may read, cancel, delete and download through `/v1/jobs/:id…`: a team key its own team's; an
 * admin-scoped key every team's. The one place that decides it (JobsService asks it for every job access).
 */
export function jobScopeOf(caller: Caller): TeamScope {
  return caller.scopes.includes('admin') ? EVERY_TEAM : teamOf(caller);
}

/**
 * The team a submit (a job, an upload URL) is made for: the caller's own, or the one an admin-scoped key names in
 * `X-Dimoo-Team` (the playground; a key without the admin scope naming one is refused, 403). Whether that team exists
 * is the caller's to check (404); `as` says the header applied, so the caller audits it.
 */
export function submitTeamOf(caller: Caller, header: string | undefined): { teamId: string; as: boolean } {
  if (header === undefined) return { teamId: teamOf(caller), as: false };
  if (!caller.scopes.includes('admin')) throw submitAsForbidden();
  const teamId = header.trim().toLowerCase();
  if (!isUuid(teamId)) throw invalidRequest([{ field: SUBMIT_AS_HEADER, reason: 'must be a team id' }]);
  return { teamId, as: true };
}

/** The caller as the audit log records it. */
export const auditActor = (caller: Caller) => ({ keyId: caller.keyId, label: caller.label });

export const CurrentCaller = createParamDecorator(
  (_: unknown, ctx: ExecutionContext): Caller => ctx.switchToHttp().getRequest<Request & { caller: Caller }>().caller,
);

const unauthorized = () => new ProblemError(HttpStatus.UNAUTHORIZED, 'unauthorized', 'Unauthorized', 'a valid API key is required');

function keyOf(req: Request): string | null {
  const auth = req.header('authorization');
  if (auth?.startsWith('Bearer ')) return auth.slice(7).trim();
  return req.header('x-api-key')?.trim() ?? null;
}

@Injectable()
export class ApiKeyGuard implements CanActivate {
  /** Failed authentications per source address in its current minute: guessing keys is slow and visible. */
  private readonly failures = new Map<string, { count: number; since: number }>();

  constructor(
    private readonly keys: ApiKeyRepository,
    /** keys verified in the last API_KEY_CACHE_MS: no database round trip, and a Postgres outage does not fail them */
    private readonly cache: KeyCache,
    private readonly reflector: Reflector,
    @Inject(API_ENV) private readonly env: ApiEnv,
  ) {}

  private async verify(key: string): Promise<Caller | null> {
    const id = createHash('sha256').update(key).digest('base64');
    const hit = this.cache.get(id);
    if (hit) return hit;
    const found = await this.keys.verify(key);
    if (!found) return null;
    const caller: Caller = { teamId: found.teamId, scopes: found.scopes, keyId: found.keyId, label: found.prefix };
    // a rotated key in its grace period is checked each time: a cache must not keep it past its end
    if (found.expiresAt === null) this.cache.set(id, caller);
    return caller;
  }

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const req = ctx.switchToHttp().getRequest<Request & { caller: Caller }>();
    await this.callerOf(req);
    const scope = this.reflector.getAllAndOverride<ApiKeyScope | undefined>(SCOPE, [ctx.getHandler(), ctx.getClass()]);
    if (scope && !req.caller.scopes.includes(scope)) {
      throw new ProblemError(HttpStatus.FORBIDDEN, 'forbidden', 'Forbidden', `this key lacks the ${scope} scope`);
    }
    return true;
  }

  /**
   * Authenticates the request (its key sets `req.caller`), failures counted per source address: for the routes this
   * guard protects, and for what is mounted outside Nest's routing (the queue board).
   * @throws ProblemError 401, or 429 for an address that failed too often
   */
  async callerOf(req: Request & { caller?: Caller }): Promise<Caller> {
    const source = req.ip ?? req.socket.remoteAddress ?? 'unknown';
    this.refuseIfGuessing(source);
    try {
      await this.authenticate(req as Request & { caller: Caller });
    } catch (err) {
      if (err instanceof ProblemError && err.slug === 'unauthorized') this.failed(source);
      throw err;
    }
    return req.caller!;
  }

  private refuseIfGuessing(source: string): void {
    const f = this.failures.get(source);
    if (!f || Date.now() - f.since >= 60_000 || f.count < this.env.AUTH_FAILURES_PER_MINUTE) return;
    const retryAfter = Math.ceil((f.since + 60_000 - Date.now()) / 1000);
    throw new ProblemError(
      HttpStatus.TOO_MANY_REQUESTS,
      'too-many-failed-authentications',
      'Too many failed authentications',
      'retry later',
      undefined,
      retryAfter,
    );
  }

  private failed(source: string): void {
    const now = Date.now();
    const f = this.failures.get(source);
    if (f && now - f.since < 60_000) f.count++;
    else {
      this.failures.delete(source);
      this.failures.set(source, { count: 1, since: now });
      if (this.failures.size > CACHE_ENTRIES) this.failures.delete(this.failures.keys().next().value!);
    }
  }

  private async authenticate(req: Request & { caller: Caller }): Promise<void> {
    const key = keyOf(req);
    if (!key) throw unauthorized();
    const given = Buffer.from(key);
    const bootstrap = [this.env.ADMIN_API_KEY, this.env.ADMIN_API_KEY_PREVIOUS].some((k) => {
      const b = Buffer.from(k ?? '');
      return k !== undefined && given.length === b.length && timingSafeEqual(given, b);
    });
    if (bootstrap) {
      req.caller = { teamId: null, scopes: API_KEY_SCOPES, keyId: null, label: 'bootstrap' };
    } else {
      const caller = await this.verify(key);
      if (!caller) throw unauthorized();
      req.caller = caller;
    }
  }
}
