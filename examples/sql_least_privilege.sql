-- Least-privilege roles for an aioqueue schema. Run as the owner of the schema (the role that
-- applied the migrations; only it may run DDL), after the migrations.
--
--   aq_worker    runs `aioqueue worker` / aioqueue.Worker: claims, heartbeats, outcomes,
--                retries, rescue of expired leases, pruning, cron slots, enqueues
--                (handlers enqueue follow-up jobs), and its own row in the workers table
--                (for `aioqueue status`). No DDL: it owns nothing.
--   aq_producer  only enqueues, through the SECURITY DEFINER wrapper of
--                examples/sql_security_definer.sql (run that file with app_user = aq_producer).
--                It gets nothing here: no table access, no EXECUTE on add_job/add_jobs.
--   app_lowpriv  every other role: nothing at all. Migrations revoke EXECUTE on add_job,
--                add_jobs and cron_enqueue from PUBLIC, a new schema grants PUBLIC no USAGE,
--                and row-level security is on with no policy, so even a role granted SELECT
--                later reads no row unless a policy names it.
--
-- Replace `aioqueue` with your schema name and the three role names with yours (create the
-- roles first: CREATE ROLE aq_worker LOGIN PASSWORD '...'). tests/db/test_security.py runs
-- this file and proves each role can do what is listed above and nothing more.

GRANT USAGE ON SCHEMA aioqueue TO aq_worker;

-- the worker checks the schema version before it starts
GRANT SELECT ON aioqueue.migrations TO aq_worker;

-- claims (SELECT ... FOR UPDATE SKIP LOCKED + UPDATE), heartbeats, outcomes and rescue
-- (UPDATE), pruning (DELETE), enqueueing (INSERT): rows only, never TRUNCATE or DDL
GRANT SELECT, INSERT, UPDATE, DELETE ON aioqueue.jobs TO aq_worker;
-- exactly-once cron slots: one row per cron name
GRANT SELECT, INSERT, UPDATE ON aioqueue.crons TO aq_worker;
-- its own row (registered at start, refreshed by the heartbeat, deleted at a stop) and the
-- deletion of crashed workers' stale rows by the pruner
GRANT SELECT, INSERT, UPDATE, DELETE ON aioqueue.workers TO aq_worker;
-- add_jobs draws job ids with nextval() on the identity sequence
GRANT USAGE ON SEQUENCE aioqueue.jobs_id_seq TO aq_worker;
-- enqueueing (add_jobs also re-runs failed jobs) and cron slots; all three are
-- SECURITY INVOKER: they run with the worker's rights, under the policies below
GRANT EXECUTE ON FUNCTION aioqueue.add_jobs(jsonb, timestamptz) TO aq_worker;
GRANT EXECUTE ON FUNCTION aioqueue.add_job(text, jsonb, text, timestamptz, integer, text, integer,
    text[], text, double precision, double precision) TO aq_worker;
-- the json and text forms of add_job / add_jobs (for payloads built with json_build_object)
GRANT EXECUTE ON FUNCTION aioqueue.add_job(text, json, text, timestamptz, integer, text, integer,
    text[], text, double precision, double precision) TO aq_worker;
GRANT EXECUTE ON FUNCTION aioqueue.add_job(text, text, text, timestamptz, integer, text, integer,
    text[], text, double precision, double precision) TO aq_worker;
GRANT EXECUTE ON FUNCTION aioqueue.add_jobs(json, timestamptz) TO aq_worker;
GRANT EXECUTE ON FUNCTION aioqueue.add_jobs(text, timestamptz) TO aq_worker;
-- re-running a failed job (Queue.retry, the dashboard's retry button)
GRANT EXECUTE ON FUNCTION aioqueue.retry_job(bigint) TO aq_worker;
GRANT EXECUTE ON FUNCTION aioqueue.cron_enqueue(text, timestamptz, jsonb, timestamptz)
    TO aq_worker;
-- workflows (dependencies, groups): the functions the settle trigger and add_jobs call; the
-- pruner deletes finished groups with their jobs
GRANT SELECT, INSERT, UPDATE, DELETE ON aioqueue.job_deps TO aq_worker;
GRANT SELECT, INSERT, UPDATE, DELETE ON aioqueue.job_groups TO aq_worker;
GRANT USAGE ON SEQUENCE aioqueue.job_groups_id_seq TO aq_worker;
GRANT EXECUTE ON FUNCTION aioqueue.add_jobs_core(jsonb, timestamptz) TO aq_worker;
GRANT EXECUTE ON FUNCTION aioqueue.link_job(bigint, bigint[], boolean) TO aq_worker;
GRANT EXECUTE ON FUNCTION aioqueue.group_apply(bigint, integer, integer, integer) TO aq_worker;
GRANT EXECUTE ON FUNCTION aioqueue.group_finish(bigint) TO aq_worker;
GRANT EXECUTE ON FUNCTION aioqueue.seal_group(bigint) TO aq_worker;
GRANT EXECUTE ON FUNCTION aioqueue.add_job(text, bigint[], jsonb, text, jsonb, text, timestamptz,
    integer, integer, text[], double precision) TO aq_worker;
GRANT EXECUTE ON FUNCTION aioqueue.jobs_settled() TO aq_worker;
GRANT EXECUTE ON FUNCTION aioqueue.jobs_settled_tally() TO aq_worker;

-- flow control (migration 0010): a claim locks and updates its kind's flow_limits row and its
-- keys' rate buckets (flow_key_rates), a worker writes its tasks' declared limits at start,
-- claims skip paused queues; enqueues with a concurrency_key go through add_jobs_without_keys
GRANT SELECT, INSERT, UPDATE ON aioqueue.flow_limits TO aq_worker;
GRANT SELECT ON aioqueue.flow_paused_queues TO aq_worker;
GRANT SELECT, INSERT, UPDATE, DELETE ON aioqueue.flow_key_rates TO aq_worker;
GRANT EXECUTE ON FUNCTION aioqueue.claim_gated(text[], integer[], text[], integer, text,
    double precision, timestamptz) TO aq_worker;
GRANT EXECUTE ON FUNCTION aioqueue.set_limits(text, jsonb) TO aq_worker;
GRANT EXECUTE ON FUNCTION aioqueue.pause_queue(text) TO aq_worker;
GRANT EXECUTE ON FUNCTION aioqueue.resume_queue(text) TO aq_worker;
GRANT EXECUTE ON FUNCTION aioqueue.add_jobs_without_keys(jsonb, timestamptz) TO aq_worker;

-- history (migration 0011): the pruner moves finished jobs into jobs_history, makes its
-- partitions ahead and drops them at retention (both SECURITY DEFINER: no DDL right needed);
-- readers and retry read it, retry marks the retried job there, an unsafe_dedupe enqueue whose
-- key a job in history holds brings that job back into jobs (add_jobs_before_history)
GRANT SELECT, INSERT, UPDATE, DELETE ON aioqueue.jobs_history TO aq_worker;
GRANT EXECUTE ON FUNCTION aioqueue.add_jobs_before_history(jsonb, timestamptz) TO aq_worker;
GRANT SELECT ON aioqueue.jobs_history_partitions, aioqueue.jobs_history_settings TO aq_worker;
GRANT EXECUTE ON FUNCTION aioqueue.history_prepare(double precision, timestamptz) TO aq_worker;
GRANT EXECUTE ON FUNCTION aioqueue.history_drop_expired(text, double precision, integer,
    timestamptz) TO aq_worker;

-- the one wake-up function and the 100-year limit (migration 0012), called by every statement
-- that notifies and by add_jobs
GRANT EXECUTE ON FUNCTION aioqueue.notify_workers(text), aioqueue.max_delay_seconds()
    TO aq_worker;

-- Row-level security is on with no policy: without these the worker would see no row.
CREATE POLICY aq_worker_all ON aioqueue.jobs FOR ALL TO aq_worker USING (true) WITH CHECK (true);
CREATE POLICY aq_worker_all ON aioqueue.crons FOR ALL TO aq_worker USING (true) WITH CHECK (true);
CREATE POLICY aq_worker_all ON aioqueue.workers FOR ALL TO aq_worker USING (true) WITH CHECK (true);
CREATE POLICY aq_worker_all ON aioqueue.job_deps FOR ALL TO aq_worker USING (true) WITH CHECK (true);
CREATE POLICY aq_worker_all ON aioqueue.job_groups FOR ALL TO aq_worker USING (true) WITH CHECK (true);

-- aq_producer and app_lowpriv: nothing (see above). Spelled out for the reader, a no-op on a
-- freshly migrated schema:
REVOKE ALL ON SCHEMA aioqueue FROM aq_producer, app_lowpriv;
REVOKE ALL ON ALL TABLES IN SCHEMA aioqueue FROM aq_producer, app_lowpriv;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA aioqueue FROM PUBLIC, aq_producer, app_lowpriv;
