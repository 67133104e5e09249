-- The team API (issue 13): deleted jobs keep their row; Idempotency-Key records.
ALTER TABLE "jobs" ADD COLUMN "deleted_at" TIMESTAMPTZ(3);

CREATE TABLE "idempotency_keys" (
    "team_id" UUID NOT NULL,
    "key" TEXT NOT NULL,
    "request_hash" TEXT NOT NULL,
    "job_id" UUID,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "idempotency_keys_pkey" PRIMARY KEY ("team_id","key")
);

CREATE INDEX "idempotency_keys_created_at_idx" ON "idempotency_keys"("created_at");

ALTER TABLE "idempotency_keys" ADD CONSTRAINT "idempotency_keys_team_id_fkey" FOREIGN KEY ("team_id") REFERENCES "teams"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- A job's deadline: not started by then, it ends `expired` (a terminal status for never-started jobs).
ALTER TYPE "job_status" ADD VALUE 'expired';
ALTER TABLE "jobs" ADD COLUMN "deadline_at" TIMESTAMPTZ(3);
CREATE INDEX "jobs_queued_deadline_idx" ON "jobs"("deadline_at") WHERE "deadline_at" IS NOT NULL AND "status" = 'queued';

-- at most one terminal event per job, `expired` included
DROP INDEX "job_events_one_terminal_per_job";
CREATE UNIQUE INDEX "job_events_one_terminal_per_job" ON "job_events"("job_id") WHERE "type" IN ('succeeded', 'failed', 'canceled', 'expired');

-- Retention: when the sweeper removed a finished job's images (the status stays).
ALTER TABLE "jobs" ADD COLUMN "result_deleted_at" TIMESTAMPTZ(3);
CREATE INDEX "jobs_retention_idx" ON "jobs"("finished_at") WHERE "result_deleted_at" IS NULL AND "deleted_at" IS NULL;

-- Keys: scopes instead of an admin flag; a rotated key's grace period; the key that submitted each job.
ALTER TABLE "api_keys" ADD COLUMN "scopes" TEXT[] NOT NULL DEFAULT ARRAY['submit', 'read']::TEXT[],
ADD COLUMN "expires_at" TIMESTAMPTZ(3);
UPDATE "api_keys" SET "scopes" = ARRAY['submit', 'read', 'admin']::TEXT[] WHERE "admin";
ALTER TABLE "api_keys" DROP COLUMN "admin";
ALTER TABLE "jobs" ADD COLUMN "api_key_id" UUID;
ALTER TABLE "jobs" ADD CONSTRAINT "jobs_api_key_id_fkey" FOREIGN KEY ("api_key_id") REFERENCES "api_keys"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- The admins' audit log.
CREATE TABLE "audit_log" (
    "id" BIGSERIAL NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "actor_key_id" UUID,
    "actor" TEXT NOT NULL,
    "action" TEXT NOT NULL,
    "target_type" TEXT NOT NULL,
    "target_id" TEXT NOT NULL,
    "details" JSONB,

    CONSTRAINT "audit_log_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "audit_log_at_idx" ON "audit_log"("at");

-- Webhooks: per job a URL and the events it wants; per team signing secrets; one delivery row per event.
ALTER TABLE "jobs" ADD COLUMN "webhook_url" TEXT, ADD COLUMN "webhook_events" TEXT[] DEFAULT ARRAY[]::TEXT[];
CREATE INDEX "job_events_created_at_idx" ON "job_events"("created_at");

CREATE TABLE "webhook_secrets" (
    "id" UUID NOT NULL,
    "team_id" UUID NOT NULL,
    "secret" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "expires_at" TIMESTAMPTZ(3),

    CONSTRAINT "webhook_secrets_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "webhook_secrets_team_id_idx" ON "webhook_secrets"("team_id");
ALTER TABLE "webhook_secrets" ADD CONSTRAINT "webhook_secrets_team_id_fkey" FOREIGN KEY ("team_id") REFERENCES "teams"("id") ON DELETE CASCADE ON UPDATE CASCADE;

CREATE TABLE "webhook_deliveries" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "job_id" UUID NOT NULL,
    "event_id" BIGINT NOT NULL,
    "event_type" TEXT NOT NULL,
    "url" TEXT NOT NULL,
    "status" TEXT NOT NULL DEFAULT 'pending',
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "log" JSONB NOT NULL DEFAULT '[]',
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "delivered_at" TIMESTAMPTZ(3),

    CONSTRAINT "webhook_deliveries_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "webhook_deliveries_event_id_key" ON "webhook_deliveries"("event_id");
CREATE INDEX "webhook_deliveries_job_id_idx" ON "webhook_deliveries"("job_id");
CREATE INDEX "webhook_deliveries_status_updated_at_idx" ON "webhook_deliveries"("status", "updated_at");
ALTER TABLE "webhook_deliveries" ADD CONSTRAINT "webhook_deliveries_job_id_fkey" FOREIGN KEY ("job_id") REFERENCES "jobs"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "webhook_deliveries" ADD CONSTRAINT "webhook_deliveries_event_id_fkey" FOREIGN KEY ("event_id") REFERENCES "job_events"("id") ON DELETE CASCADE ON UPDATE CASCADE;

CREATE TABLE "notifier_state" (
    "name" TEXT NOT NULL,
    "scanned_until" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "notifier_state_pkey" PRIMARY KEY ("name")
);

-- n images per job: every result's key, in order (result_key stays the first).
ALTER TABLE "jobs" ADD COLUMN "result_keys" TEXT[] DEFAULT ARRAY[]::TEXT[];
