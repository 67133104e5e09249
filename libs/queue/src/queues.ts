import { z } from 'zod';

/** The BullMQ queues (names under each deployment's QUEUE_PREFIX). */
export const QUEUE_NAMES = { generation: 'dimoo-generation', webhooks: 'dimoo-webhooks' } as const;

/** What travels through Redis: only ids — Postgres holds the job. */
export const QueuePayloadSchema = z.object({ jobId: z.uuid(), teamId: z.uuid() });
export type QueuePayload = z.infer<typeof QueuePayloadSchema>;
