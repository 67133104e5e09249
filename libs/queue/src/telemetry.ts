/**
 * One trace per job across processes. A job does not enter BullMQ at submit: it waits in the fair queue, and a
 * dispatcher — in any API or worker process, later — moves it on. So the submit's trace context (its W3C
 * `traceparent`) is stored with the job's fair-queue entry, and the dispatcher adds each job to BullMQ with a
 * `dispatch` span that is a child of it; BullMQ (`bullmq-otel`) carries that span's context in the job's options,
 * and the worker's `process` span, and everything the worker does for the job, are its children:
 *
 *   POST /v1/jobs (API) → … the submit's spans → dispatch (API or worker) → process dimoo-generation (worker) → job …
 *
 * A job put in the fair queue outside a request (the outbox, after a Redis outage) has no context: its `dispatch` span
 * starts a trace of its own. Without tracing nothing is stored and no span is made.
 */
import type { Attributes } from '@opentelemetry/api';
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { BullMQOtel } from 'bullmq-otel';

/** Span attributes naming a job: the same keys on the API's, the dispatcher's and the worker's spans. */
export const jobAttributes = (jobId: string, teamId: string): Attributes => ({ 'dimoo.job.id': jobId, 'dimoo.team.id': teamId });

/** BullMQ's tracing for a queue or a worker (its `telemetry` option), when tracing is on. */
export const queueTelemetry = (enabled: boolean): BullMQOtel | undefined => (enabled ? new BullMQOtel({ tracerName: 'bullmq' }) : undefined);

const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** The active trace context as a W3C traceparent; undefined without tracing or outside a trace. */
export function currentTraceparent(): string | undefined {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  const tp = carrier['traceparent'];
  return tp && TRACEPARENT.test(tp) ? tp : undefined;
}

/** A stored traceparent, if it is one (the fair queue stores it between `|` separators). */
export const validTraceparent = (tp: string | undefined): string | undefined => (tp && TRACEPARENT.test(tp) ? tp : undefined);

export interface DispatchSpan {
  /** what BullMQ stores as the job's trace context (`opts.telemetry.metadata`); undefined without tracing */
  metadata: string | undefined;
  end(err?: unknown): void;
}

/**
 * The span of one job's hand-over to BullMQ, a child of its submit (`traceparent`) or, without one, a trace's root;
 * never a child of whatever the dispatching process is doing (a pass moves several teams' jobs).
 */
export function dispatchSpan(job: { jobId: string; teamId: string; traceparent?: string }, queue: string): DispatchSpan {
  const parent = job.traceparent ? propagation.extract(ROOT_CONTEXT, { traceparent: job.traceparent }) : ROOT_CONTEXT;
  const span = trace
    .getTracer('dimoo')
    .startSpan(
      `dispatch ${queue}`,
      { kind: SpanKind.PRODUCER, attributes: { ...jobAttributes(job.jobId, job.teamId), 'messaging.destination.name': queue } },
      parent,
    );
  const carrier: Record<string, string> = {};
  propagation.inject(trace.setSpan(parent, span), carrier);
  return {
    metadata: Object.keys(carrier).length > 0 ? JSON.stringify(carrier) : undefined,
    end: (err?: unknown) => {
      if (err !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : 'failed' });
      span.end();
    },
  };
}
