-- Admin insights: the worker registry (each worker's row, written with its heartbeats; GET /v1/admin/workers), the
-- jobs each batch ran (GET /v1/admin/batches), and the indexes the stats, usage and batch pages read by time.
CREATE TABLE "workers" (
    "id" TEXT NOT NULL,
    "host" TEXT NOT NULL,
    "pid" INTEGER NOT NULL,
    "model_name" TEXT NOT NULL,
    "model_version" TEXT NOT NULL,
    "model_checksum" TEXT NOT NULL,
    "execution_provider" TEXT NOT NULL,
    "slots" INTEGER NOT NULL,
    "heartbeat_ms" INTEGER NOT NULL,
    "running_jobs" INTEGER NOT NULL DEFAULT 0,
    "current_batch_id" UUID,
    "jobs_done" INTEGER NOT NULL DEFAULT 0,
    "jobs_failed" INTEGER NOT NULL DEFAULT 0,
    "last_error" TEXT,
    "started_at" TIMESTAMPTZ(3) NOT NULL,
    "heartbeat_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "workers_pkey" PRIMARY KEY ("id")
);

ALTER TABLE "batches" ADD COLUMN "job_ids" TEXT[] DEFAULT ARRAY[]::TEXT[];

CREATE INDEX "batches_created_at_idx" ON "batches"("created_at");
CREATE INDEX "jobs_finished_at_idx" ON "jobs"("finished_at");
