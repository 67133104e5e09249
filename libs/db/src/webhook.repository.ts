import { randomBytes } from 'node:crypto';
import type { JobEventType, WebhookEvent } from '@dimoo/contracts';
import { webhookEventOf } from '@dimoo/contracts';
import { NotFound } from './errors';
import { isUuid, Prisma, type PrismaClient } from './prisma';
import { toStreamEvent, toView } from './job-view';

/** How far before the last scan a scan looks again: an event row is visible only once committed, a little after its time. */
const SCAN_OVERLAP_MS = 5_000;
const SCAN_STATE = 'webhooks';

export type DeliveryOutcome = 'retry' | 'delivered' | 'failed';

/** One try of a delivery, as its log keeps it. */
export interface DeliveryAttempt {
  at: string;
  status: number | null;
  error: string | null;
  ms: number;
  address?: string;
}

/** What a delivery try needs: where, for which team, and the payload's data (the event and the job as it is now). */
export interface DeliveryWork {
  id: string;
  teamId: string;
  url: string;
  status: string;
  /** the stream name of the event: started, progress, completed, failed, canceled, expired */
  eventType: WebhookEvent;
  data: Prisma.JsonObject;
}

/** A new signing secret in the Standard Webhooks form (`whsec_` + base64 of 32 random bytes). */
const newSecret = () => `whsec_${randomBytes(32).toString('base64')}`;

/**
 * Webhooks: per-team signing secrets (rotated with a grace period), and deliveries — one row per job event a job's
 * webhook asked for, with every try logged.
 */
export class WebhookRepository {
  public constructor(private readonly prisma: PrismaClient) {}

  /**
   * Records a delivery for every event since the last scan (less an overlap for late commits) whose job's webhook asked
   * for it; an event already recorded is skipped (unique event id). Returns the new deliveries' ids.
   */
  public async scan(): Promise<string[]> {
    const state = await this.prisma.notifierState.findUnique({ where: { name: SCAN_STATE } });
    const rows = await this.prisma.$queryRaw<{ id: string; scanned_at: Date }[]>`
      WITH ins AS (
        INSERT INTO webhook_deliveries (job_id, event_id, event_type, url)
        SELECT e.job_id, e.id, e.type, j.webhook_url
        FROM job_events e JOIN jobs j ON j.id = e.job_id
        WHERE e.created_at > ${state ? new Date(state.scannedUntil.getTime() - SCAN_OVERLAP_MS) : new Date(Date.now() - 60_000)}
          AND j.webhook_url IS NOT NULL AND e.type = ANY(j.webhook_events)
        ON CONFLICT (event_id) DO NOTHING
        RETURNING id
      )
      SELECT ins.id, now() AS scanned_at FROM ins RIGHT JOIN (SELECT 1) one ON true`;
    const scannedUntil = rows[0]!.scanned_at;
    await this.prisma.notifierState.upsert({ where: { name: SCAN_STATE }, create: { name: SCAN_STATE, scannedUntil }, update: { scannedUntil } });
    return rows.filter((r) => r.id !== null).map((r) => r.id);
  }

  /** Pending deliveries nothing happened to since `before` (their hand-over to the queue may have been lost). */
  public async pendingSince(before: Date, limit = 500): Promise<string[]> {
    const rows = await this.prisma.webhookDelivery.findMany({ where: { status: 'pending', updatedAt: { lt: before } }, select: { id: true }, take: limit });
    return rows.map((r) => r.id);
  }

  /** The delivery was handed to the queue now. */
  public async touch(id: string): Promise<void> {
    await this.prisma.webhookDelivery.updateMany({ where: { id, status: 'pending' }, data: { updatedAt: new Date() } });
  }

  /** A delivery with its payload data, or null when it (or its job) is gone. */
  public async delivery(id: string): Promise<DeliveryWork | null> {
    if (!isUuid(id)) return null;
    const d = await this.prisma.webhookDelivery.findUnique({ where: { id }, include: { job: true, event: true } });
    if (!d) return null;
    const stream = toStreamEvent(d.event);
    const eventType = webhookEventOf(d.eventType as JobEventType);
    if (!stream || !eventType) return null;
    const data = JSON.parse(
      JSON.stringify({ event: { type: stream.event, id: d.eventId.toString(), ...stream.data }, job: toView(d.job) }),
    ) as Prisma.JsonObject;
    return { id: d.id, teamId: d.job.teamId, url: d.url, status: d.status, eventType, data };
  }

  /** Logs a try; `delivered` and `failed` end the delivery. */
  public async attempt(id: string, entry: DeliveryAttempt, outcome: DeliveryOutcome): Promise<void> {
    const status = outcome === 'retry' ? 'pending' : outcome;
    await this.prisma.$executeRaw`
      UPDATE webhook_deliveries
      SET attempts = attempts + 1, log = log || ${JSON.stringify([entry])}::jsonb, status = ${status}, updated_at = now(),
          delivered_at = CASE WHEN ${outcome === 'delivered'} THEN now() END
      WHERE id = ${id}::uuid AND status = 'pending'`;
  }

  /** A job's deliveries in event order (the delivery log); empty for another team's job. */
  public async ofJob(jobId: string, teamId: string) {
    if (!isUuid(jobId) || !isUuid(teamId)) return [];
    return this.prisma.webhookDelivery.findMany({ where: { jobId, job: { teamId } }, orderBy: { eventId: 'asc' } });
  }

  /** The team's active signing secrets, newest first; a team that has none gets one now. */
  public async secretsOf(teamId: string): Promise<string[]> {
    const active = () =>
      this.prisma.webhookSecret.findMany({ where: { teamId, OR: [{ expiresAt: null }, { expiresAt: { gt: new Date() } }] }, orderBy: { createdAt: 'desc' } });
    let secrets = await active();
    if (secrets.length === 0) {
      // at most one first secret per team, also when two notifiers ask at once (a transaction-scoped lock per team)
      await this.prisma.$transaction(async (tx) => {
        await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtext(${teamId}))`;
        if ((await tx.webhookSecret.count({ where: { teamId, OR: [{ expiresAt: null }, { expiresAt: { gt: new Date() } }] } })) === 0) {
          await tx.webhookSecret.create({ data: { teamId, secret: newSecret() } });
        }
      });
      secrets = await active();
    }
    return secrets.map((s) => s.secret);
  }

  /**
   * A new signing secret for the team, returned (the team verifies with it); the current ones keep signing for
   * `graceSeconds` more, so receivers see both signatures while they switch. @throws NotFound for an unknown team
   */
  public async rotateSecret(teamId: string, graceSeconds: number): Promise<string> {
    if (!isUuid(teamId) || (await this.prisma.team.count({ where: { id: teamId } })) === 0) throw new NotFound('team', teamId);
    const secret = newSecret();
    await this.prisma.$transaction([
      this.prisma.webhookSecret.updateMany({ where: { teamId, expiresAt: null }, data: { expiresAt: new Date(Date.now() + graceSeconds * 1000) } }),
      this.prisma.webhookSecret.create({ data: { teamId, secret } }),
    ]);
    return secret;
  }
}
