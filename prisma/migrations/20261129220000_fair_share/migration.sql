-- Fair share and quotas (issue 12): a team's weight in the fair share and its limits (NULL: none)
ALTER TABLE "teams" ADD COLUMN "weight" DOUBLE PRECISION NOT NULL DEFAULT 1,
ADD COLUMN "max_queued" INTEGER,
ADD COLUMN "max_running" INTEGER,
ADD COLUMN "submits_per_minute" INTEGER;

-- Push: every committed job event notifies the API processes (LISTEN dimoo_job_events) with its job id. Postgres
-- delivers a notification when its transaction commits, so a listener never sees an event it cannot read yet.
CREATE FUNCTION "dimoo_notify_job_event"() RETURNS trigger AS $$
BEGIN
  PERFORM pg_notify('dimoo_job_events', NEW."job_id"::text);
  RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER "job_events_notify" AFTER INSERT ON "job_events" FOR EACH ROW EXECUTE FUNCTION "dimoo_notify_job_event"();
