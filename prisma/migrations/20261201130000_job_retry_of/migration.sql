-- An admin's retry of a failed, canceled or expired job is a new job pointing at the original (no foreign key: job
-- rows are never removed, a deleted job keeps its row).
ALTER TABLE "jobs" ADD COLUMN "retry_of" UUID;
