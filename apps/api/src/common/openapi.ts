/**
 * The OpenAPI document's building blocks, for the controllers: zod schemas as JSON Schema (OpenAPI 3.1 is JSON Schema
 * 2020-12) kept as named components, JSON answers and bodies with examples, query parameters from a zod object, and
 * problem+json answers whose examples are made by the same code as the real answers. `apps/api/src/openapi.ts`
 * assembles the document (served at /docs, written to docs/openapi.json by `npm run openapi`).
 */
import { applyDecorators, HttpStatus } from '@nestjs/common';
import type { ApiResponseOptions, OpenAPIObject } from '@nestjs/swagger';
import { ApiBearerAuth, ApiBody, ApiHeader, ApiParam, ApiQuery, ApiResponse, ApiSecurity } from '@nestjs/swagger';
import type { FieldIssue } from '@dimoo/contracts';
import { ProblemSchema, SUBMIT_AS_HEADER } from '@dimoo/contracts';
import { z } from 'zod';
import { EXAMPLE_IDS } from './examples';
import { databaseUnavailable, invalidRequest, notFound, problemBody, ProblemError, storageUnavailable, submitAsForbidden } from './problem';

type Io = 'input' | 'output';
type Json = Record<string, unknown>;

/**
 * A zod schema as JSON Schema 2020-12, without `$schema` (the document says which dialect it speaks), the regular
 * expressions zod adds to a `format` it names (uuid, date-time, …) and the safe-integer bounds of every `.int()`.
 */
export function jsonSchema(schema: z.ZodType, io: Io): Json {
  const { $schema: _dialect, ...json } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Json;
  return tidy(json) as Json;
}

function tidy(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(tidy);
  if (typeof node !== 'object' || node === null) return node;
  const out: Json = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === 'pattern' && 'format' in node) continue;
    if ((key === 'maximum' && value === Number.MAX_SAFE_INTEGER) || (key === 'minimum' && value === Number.MIN_SAFE_INTEGER)) continue;
    out[key] = tidy(value);
  }
  return out;
}

const components = new Map<string, { schema: z.ZodType; io: Io; json: Json }>();

/**
 * A reference to the component schema `name`, made from `schema` once (`io`: a request's shape before its defaults
 * and transforms, or an answer's). One name, one schema: a second schema under a taken name throws.
 */
export function schemaRef(name: string, schema: z.ZodType, io: Io = 'output'): { $ref: string } {
  const known = components.get(name);
  if (known && (known.schema !== schema || known.io !== io)) throw new Error(`OpenAPI: two schemas are named ${name}`);
  if (!known) components.set(name, { schema, io, json: jsonSchema(schema, io) });
  return { $ref: `#/components/schemas/${name}` };
}

/** The zod schema a component was made from, and which side of it (for the document's own checks). */
export function componentSource(name: string): { schema: z.ZodType; io: Io } | undefined {
  return components.get(name);
}

/** The registered component schemas, by name. */
export function componentSchemas(): Record<string, Json> {
  return Object.fromEntries([...components.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([name, c]) => [name, c.json]));
}

export const SECURITY = { bearer: 'bearer', apiKey: 'apiKey' } as const;

/** An API key is needed: `Authorization: Bearer …` or `X-API-Key`. */
export const Authenticated = () => applyDecorators(ApiBearerAuth(SECURITY.bearer), ApiSecurity(SECURITY.apiKey));

interface Example {
  summary: string;
  value: unknown;
}

/** Several named examples of one answer (ApiJson's `example`). */
export class NamedExamples {
  constructor(readonly examples: Record<string, Example>) {}
}
export const examplesOf = (examples: Record<string, Example>) => new NamedExamples(examples);

/** A JSON answer: its schema (a named component) and one example, or several (`examplesOf`). */
export function ApiJson(
  status: number,
  description: string,
  component: [name: string, schema: z.ZodType],
  example: unknown,
  headers?: ApiResponseOptions['headers'],
): MethodDecorator & ClassDecorator {
  const [name, schema] = component;
  return ApiResponse({
    status,
    description,
    ...(headers ? { headers } : {}),
    content: {
      'application/json': { schema: schemaRef(name, schema), ...(example instanceof NamedExamples ? { examples: example.examples } : { example }) },
    },
  });
}

/** A JSON request body: its schema (a named component, the request's input shape) and named examples. */
export function ApiJsonBody(name: string, schema: z.ZodType, examples: Record<string, Example>, required = true): MethodDecorator {
  return ApiBody({ required, schema: schemaRef(name, schema, 'input'), examples });
}

const moreBodies = new Map<string, Record<string, { schema: Json; example: unknown }>>();

/**
 * Another encoding of a route's body beside its JSON (a multipart form), with its schema and an example: the document
 * builder adds it to the operation (ApiBody gives every content type one schema).
 */
export function ApiAlsoConsumes(content: Record<string, { schema: Json; example: unknown }>): MethodDecorator {
  return (target, key) => {
    // Nest's operation id: <controller class>_<method>
    moreBodies.set(`${target.constructor.name}_${String(key)}`, content);
  };
}

/** Adds the encodings ApiAlsoConsumes declared to the document's operations. */
export function addMoreBodies(doc: OpenAPIObject): void {
  for (const item of Object.values(doc.paths)) {
    for (const op of Object.values(item as Record<string, { operationId?: string; requestBody?: unknown }>)) {
      const more = op.operationId ? moreBodies.get(op.operationId) : undefined;
      if (!more) continue;
      const body = (op.requestBody ?? { content: {} }) as { content: Record<string, unknown> };
      op.requestBody = { ...body, content: { ...body.content, ...more } };
    }
  }
}

/** One query parameter per field of a zod object (its input shape), each with an example. */
export function ApiZodQuery(schema: z.ZodObject, examples: Record<string, unknown>): MethodDecorator {
  const json = jsonSchema(schema, 'input') as { properties: Record<string, Json>; required?: string[] };
  return applyDecorators(
    ...Object.entries(json.properties).map(([name, { description, ...property }]) =>
      ApiQuery({
        name,
        required: json.required?.includes(name) ?? false,
        schema: { ...property, examples: [examples[name]] },
        ...(typeof description === 'string' ? { description } : {}),
      }),
    ),
  );
}

/** A path parameter: a uuid (job, team, key ids) unless a schema is given. */
export const ApiPathParam = (name: string, description: string, example: string | number, schema: Json = { type: 'string', format: 'uuid' }) =>
  ApiParam({ name, description, schema: { ...schema, examples: [example] } });

/** A request header a route reads. */
export const ApiRequestHeader = (name: string, description: string, example: string) =>
  ApiHeader({ name, required: false, description, schema: { type: 'string', examples: [example] } });

/** `X-Dimoo-Team`: an admin-scoped key submits as that team (the dashboard's playground). */
export const ApiSubmitAs = () =>
  ApiRequestHeader(
    SUBMIT_AS_HEADER,
    'admin-scoped keys only: submit as this team (its quotas, its storage, its jobs), audited job.submit_as; another key sending it is 403, an unknown team 404',
    EXAMPLE_IDS.team,
  );

/** `Prefer: wait=N` (RFC 7240). */
export const ApiPreferWait = () =>
  ApiRequestHeader('Prefer', 'wait=N: hold the answer up to N seconds (at most 60) for the job to finish; Preference-Applied says what was applied', 'wait=30');

const retryAfter = { 'Retry-After': { description: 'seconds to wait before retrying', schema: { type: 'integer' } } };
const rateLimit = {
  RateLimit: { description: 'the team’s remaining submissions and seconds to the window’s end (IETF RateLimit fields)', schema: { type: 'string' } },
  'RateLimit-Policy': { description: 'the team’s submission limit per window', schema: { type: 'string' } },
};

/** The problems the team API answers, made as the API makes them: the examples of the OpenAPI document. */
export const PROBLEMS = {
  invalid: (field: string, reason: string) => invalidRequest([{ field, reason }]),
  unauthorized: new ProblemError(HttpStatus.UNAUTHORIZED, 'unauthorized', 'Unauthorized', 'a valid API key is required'),
  forbidden: (scope: string) => new ProblemError(HttpStatus.FORBIDDEN, 'forbidden', 'Forbidden', `this key lacks the ${scope} scope`),
  noTeam: new ProblemError(HttpStatus.FORBIDDEN, 'no-team', 'No team', 'this key belongs to no team; use a team key'),
  submitAsForbidden: submitAsForbidden(),
  notFound: (what: string) => notFound(what),
  conflict: (detail: string) => new ProblemError(HttpStatus.CONFLICT, 'conflict', 'Conflict', detail),
  tooManyAuthFailures: new ProblemError(HttpStatus.TOO_MANY_REQUESTS, 'too-many-failed-authentications', 'Too many failed authentications', 'retry later'),
  databaseUnavailable: databaseUnavailable(),
  storageUnavailable: storageUnavailable(),
  /** a problem the route makes itself */
  of: (status: number, slug: string, title: string, detail: string, errors?: FieldIssue[]) => new ProblemError(status, slug, title, detail, errors),
};

/** What the body parser refuses before any route runs (common/body.ts), on every route that takes a JSON body. */
export const BODY_PROBLEMS = {
  400: [
    PROBLEMS.of(400, 'malformed-json', 'Malformed JSON', 'Unexpected token } in JSON at position 27', [
      { field: '(body)', reason: 'Unexpected token } in JSON at position 27' },
    ]),
  ],
  413: PROBLEMS.of(413, 'body-too-large', 'Request body too large', 'request entity too large', [{ field: '(body)', reason: 'request entity too large' }]),
};

type Problems = Partial<Record<number, ProblemError | ProblemError[]>>;

/**
 * The route's problem+json answers, each status with its examples. `auth` (the scope the route needs; false for a route
 * without a key) adds what every authenticated route may answer: 401 (no valid key), 403 (the key lacks the scope),
 * 429 (too many failed authentications from the address) and 503 (the record unreachable).
 */
export function ApiProblems(problems: Problems, auth: { scope: string } | false): MethodDecorator & ClassDecorator {
  const all = new Map<number, ProblemError[]>();
  const add = (p: ProblemError) => all.set(p.status, [...(all.get(p.status) ?? []), p]);
  for (const list of Object.values(problems)) for (const p of [list ?? []].flat()) add(p);
  if (auth) {
    add(PROBLEMS.unauthorized);
    add(PROBLEMS.forbidden(auth.scope));
    add(PROBLEMS.tooManyAuthFailures);
    if (!all.has(HttpStatus.SERVICE_UNAVAILABLE)) add(PROBLEMS.databaseUnavailable);
  }
  const decorators = [...all.entries()]
    .sort(([a], [b]) => a - b)
    .map(([status, list]) => {
      const examples: Record<string, Example> = {};
      for (const p of list) {
        let name = p.slug;
        for (let i = 2; name in examples; i++) name = `${p.slug}-${i}`;
        examples[name] = { summary: p.errors ? `${p.title}: ${p.errors.map((e) => e.field).join(', ')}` : p.title, value: problemBody(p) };
      }
      const headers =
        status === 429 ? { ...retryAfter, ...(list.some((p) => p.slug === 'rate-limited') ? rateLimit : {}) } : status === 503 ? retryAfter : undefined;
      return ApiResponse({
        status,
        description: [...new Set(list.map((p) => p.title))].join('; '),
        ...(headers ? { headers } : {}),
        content: { 'application/problem+json': { schema: schemaRef('Problem', ProblemSchema), examples } },
      });
    });
  return applyDecorators(...decorators);
}
