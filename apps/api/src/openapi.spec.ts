/**
 * The OpenAPI document (docs/openapi.json): committed as `npm run openapi` writes it (a stale file fails here), and
 * complete: every operation has a summary, its parameters, a success answer, its error answers as problem+json, a
 * schema and an example for every body it takes or answers, and each example fits its schema.
 */
import { readFileSync } from 'node:fs';
import type { OpenAPIObject } from '@nestjs/swagger';
import { componentSource } from './common/openapi';
import { OPENAPI_FILE, openApiDocument, renderOpenApi } from './openapi';

type Json = Record<string, unknown>;
interface Media {
  schema?: Json;
  example?: unknown;
  examples?: Record<string, { value: unknown }>;
}
interface Operation {
  summary?: string;
  operationId?: string;
  tags?: string[];
  security?: unknown[];
  parameters?: { name: string; in: string; required?: boolean; schema?: Json }[];
  requestBody?: { content?: Record<string, Media> };
  responses: Record<string, { description?: string; content?: Record<string, Media> }>;
}

let doc: OpenAPIObject;
const operations: [string, Operation][] = [];

beforeAll(async () => {
  doc = await openApiDocument();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item as Record<string, Operation>)) operations.push([`${method.toUpperCase()} ${path}`, op]);
  }
});

const examplesOf = (m: Media): unknown[] => (m.example !== undefined ? [m.example] : Object.values(m.examples ?? {}).map((e) => e.value));
const isBinary = (m: Media) => m.schema?.['format'] === 'binary';

describe('docs/openapi.json', () => {
  it('is what `npm run openapi` writes (run it after changing a route)', () => {
    const committed = readFileSync(OPENAPI_FILE, 'utf8');
    expect(committed === renderOpenApi(doc) ? 'fresh' : 'stale: run npm run openapi').toBe('fresh');
  });

  it('names every operation, its path parameters, and gives each parameter a schema with an example', () => {
    expect(operations.length).toBeGreaterThanOrEqual(20);
    const missing: string[] = [];
    for (const [name, op] of operations) {
      if (!op.summary) missing.push(`${name}: summary`);
      if (!op.tags?.length) missing.push(`${name}: tags`);
      const params = op.parameters ?? [];
      for (const [, param] of name.matchAll(/\{(\w+)\}/g)) if (!params.some((p) => p.in === 'path' && p.name === param)) missing.push(`${name}: path ${param}`);
      for (const p of params) if (!p.schema || !Array.isArray(p.schema['examples'])) missing.push(`${name}: ${p.in} ${p.name} schema/example`);
    }
    expect(missing).toEqual([]);
  });

  it('gives every operation a success answer, and every body (request or answer) a schema and an example', () => {
    const missing: string[] = [];
    for (const [name, op] of operations) {
      const statuses = Object.keys(op.responses);
      if (!statuses.some((s) => /^[23]\d\d$/.test(s))) missing.push(`${name}: a success answer`);
      for (const [status, res] of Object.entries(op.responses)) {
        if (!res.description) missing.push(`${name} ${status}: description`);
        if (status !== '204' && status !== '303' && !res.content) missing.push(`${name} ${status}: content`);
        for (const [type, media] of Object.entries(res.content ?? {})) {
          if (!media.schema) missing.push(`${name} ${status} ${type}: schema`);
          if (!isBinary(media) && examplesOf(media).length === 0) missing.push(`${name} ${status} ${type}: example`);
        }
      }
      for (const [type, media] of Object.entries(op.requestBody?.content ?? {})) {
        if (!media.schema) missing.push(`${name} body ${type}: schema`);
        if (examplesOf(media).length === 0) missing.push(`${name} body ${type}: example`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('takes an API key on every /v1 route, and answers its errors as problem+json, 401 and 403 included', () => {
    const wrong: string[] = [];
    for (const [name, op] of operations) {
      if (name.includes(' /v1/') && !op.security) wrong.push(`${name}: security (an API key)`);
      if (!op.security) continue;
      for (const status of ['401', '403']) if (!op.responses[status]) wrong.push(`${name}: ${status}`);
      for (const [status, res] of Object.entries(op.responses)) {
        if (Number(status) >= 400 && Object.keys(res.content ?? {}).join() !== 'application/problem+json') wrong.push(`${name} ${status}: problem+json`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('resolves every $ref, and each example fits the zod schema its component was made from', () => {
    const schemas = doc.components?.schemas ?? {};
    const refs = JSON.stringify(doc).match(/"\$ref":"[^"]+"/g) ?? [];
    for (const ref of new Set(refs)) expect(Object.keys(schemas)).toContain(ref.slice('"$ref":"#/components/schemas/'.length, -1));

    const misfits: string[] = [];
    let checked = 0;
    for (const [name, op] of operations) {
      const media = [
        ...Object.entries(op.requestBody?.content ?? {}).map(([type, m]) => [`body ${type}`, m] as const),
        ...Object.entries(op.responses).flatMap(([status, r]) => Object.entries(r.content ?? {}).map(([type, m]) => [`${status} ${type}`, m] as const)),
      ];
      for (const [where, m] of media) {
        const ref = m.schema?.['$ref'];
        if (typeof ref !== 'string') continue;
        const source = componentSource(ref.split('/').at(-1)!);
        if (!source) throw new Error(`${ref}: not made from a zod schema`);
        for (const example of examplesOf(m)) {
          checked++;
          const parsed = source.schema.safeParse(example);
          if (!parsed.success) misfits.push(`${name} ${where}: ${parsed.error.message}`);
        }
      }
    }
    expect(misfits).toEqual([]);
    expect(checked).toBeGreaterThan(40);
  });
});
