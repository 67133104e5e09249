/** Every /v1 route takes an API key (Authorization: Bearer … or X-API-Key); the key's team scopes what it sees. */
import type { CanActivate, ExecutionContext } from '@nestjs/common';
import { createParamDecorator, HttpStatus, Inject, Injectable, SetMetadata } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { timingSafeEqual } from 'node:crypto';
import { ApiKeyRepository } from '@dimoo/db';
import { ProblemError } from '../common/problem';
import { API_ENV } from '../tokens';
import type { ApiEnv } from '../config';

export interface Caller {
  teamId: string | null;
  admin: boolean;
}

const ADMIN_ONLY = 'dimoo:admin-only';
export const AdminOnly = () => SetMetadata(ADMIN_ONLY, true);

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
  constructor(
    private readonly keys: ApiKeyRepository,
    private readonly reflector: Reflector,
    @Inject(API_ENV) private readonly env: ApiEnv,
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const req = ctx.switchToHttp().getRequest<Request & { caller: Caller }>();
    const key = keyOf(req);
    if (!key) throw unauthorized();
    const bootstrap = Buffer.from(this.env.ADMIN_API_KEY);
    const given = Buffer.from(key);
    if (given.length === bootstrap.length && timingSafeEqual(given, bootstrap)) {
      req.caller = { teamId: null, admin: true };
    } else {
      const found = await this.keys.verify(key);
      if (!found) throw unauthorized();
      req.caller = { teamId: found.teamId, admin: found.admin };
    }
    if (this.reflector.get<boolean>(ADMIN_ONLY, ctx.getHandler()) && !req.caller.admin) {
      throw new ProblemError(HttpStatus.FORBIDDEN, 'forbidden', 'Forbidden', 'an admin key is required');
    }
    return true;
  }
}
