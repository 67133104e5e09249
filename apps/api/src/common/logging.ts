/**
 * The API's logs and traces in Nest: pino through nestjs-pino (`@dimoo/config` createLogger: JSON lines, base fields,
 * the active span's ids) with one line per request (pino-http: `reqId` from `X-Request-Id` or a new one, echoed in the
 * response; method, URL, status, time — never headers or bodies); every line written while a request is handled
 * carries its `reqId`, and on a job's routes its `jobId` and `teamId`. Spans are flushed when the application shuts
 * down.
 */
import type { CallHandler, DynamicModule, ExecutionContext, NestInterceptor } from '@nestjs/common';
import { Injectable, Module } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import type { Request, RequestHandler } from 'express';
import { randomUUID } from 'node:crypto';
import { LoggerModule } from 'nestjs-pino';
import { storage, Store } from 'nestjs-pino/storage';
import type { Logger as PinoBaseLogger } from 'pino';
import { pinoHttp } from 'pino-http';
import type { Observable } from 'rxjs';
import { createLogger, serviceName, TelemetryShutdown, tracingEnabled } from '@dimoo/config';
import type { Caller } from '../auth/caches';
import type { ApiEnv } from '../config';

/** Probes and scrapes: no request line each (they come every few seconds). */
const QUIET_PATHS = new Set(['/healthz', '/readyz', '/metrics']);
/** A client's X-Request-Id is kept when it is a plain token (it goes into every line of the request). */
const REQUEST_ID = /^[\w.:-]{1,128}$/;
/** The job routes: their `:id` is a job's id. */
const JOB_ROUTE = /^\/v1\/jobs\/:id(\/|$)/;

const pathOf = (url: string | undefined) => (url ?? '').split('?')[0]!;

/**
 * Adds fields to the lines the current request still writes, its request line included (`assignResponse`); outside a
 * request, nothing.
 */
export function assignLogFields(fields: Record<string, string>): void {
  const store = storage.getStore();
  if (!store) return;
  // a field already bound with this value is not bound twice (it would appear twice in the line)
  const bound = store.logger.bindings();
  const fresh = Object.fromEntries(Object.entries(fields).filter(([k, v]) => bound[k] !== v));
  if (Object.keys(fresh).length === 0) return;
  store.logger = store.logger.child(fresh);
  store.responseLogger?.setBindings(fresh);
}

/** After authentication: the caller's team, and on a job's routes the job, on every line of the request. */
@Injectable()
export class RequestLogFields implements NestInterceptor {
  intercept(ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (ctx.getType() === 'http') {
      const req = ctx.switchToHttp().getRequest<Request & { caller?: Caller }>();
      const route = (req.route as { path?: string } | undefined)?.path ?? '';
      const id = req.params['id'];
      const fields = {
        ...(req.caller?.teamId ? { teamId: req.caller.teamId } : {}),
        ...(JOB_ROUTE.test(route) && typeof id === 'string' ? { jobId: id } : {}),
      };
      assignLogFields(fields);
    }
    return next.handle();
  }
}

/**
 * The request line and the request's logging scope, one Express middleware mounted before everything else (main.ts):
 * refused bodies and unrouted requests get their line and id too. (Mounted by Nest, as a module middleware, it would
 * be an Express route: every unrouted request would look routed to the metrics.)
 */
export class RequestLogging {
  readonly middleware: RequestHandler;

  constructor(logger: PinoBaseLogger) {
    const http = pinoHttp({
      logger,
      quietReqLogger: true,
      genReqId: (req, res) => {
        const given = req.headers['x-request-id'];
        const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
        res.setHeader('X-Request-Id', id);
        return id;
      },
      autoLogging: { ignore: (req) => QUIET_PATHS.has(pathOf(req.url)) },
      customLogLevel: (_req, res, err) => (err || res.statusCode >= 500 ? 'error' : 'info'),
      // what a request line says about the exchange: no headers (keys, cookies), no body (images); read straight off
      // the request (pino's standard serializers would copy it whole first, on every request)
      wrapSerializers: false,
      serializers: {
        req: (req: Request) => ({ id: req.id, method: req.method, url: req.originalUrl }),
        res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
      },
    });
    // nestjs-pino's scope (as its own middleware makes it): Nest's loggers write through the request's logger, and
    // `assignLogFields` reaches the request line too
    this.middleware = (req, res, next) => http(req, res, () => storage.run(new Store(req.log, res.log), next));
  }
}

@Module({})
export class ObservabilityModule {
  static forRoot(env: ApiEnv): DynamicModule {
    const logger = createLogger(serviceName('dimoo-api', env), env, { traces: tracingEnabled() });
    return {
      module: ObservabilityModule,
      // nestjs-pino's Logger for Nest (main.ts useLogger); its HTTP middleware is RequestLogging's
      imports: [LoggerModule.forRoot({ pinoHttp: { logger }, forRoutes: [] })],
      providers: [
        { provide: APP_INTERCEPTOR, useClass: RequestLogFields },
        { provide: RequestLogging, useValue: new RequestLogging(logger) },
        TelemetryShutdown,
      ],
    };
  }
}
