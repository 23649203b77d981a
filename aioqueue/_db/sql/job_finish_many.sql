-- job_finish_many: record a batch of outcomes in ONE statement, fenced by lease token.
-- An outcome is written only if the job is still running under the same lease (claim) it was
-- run under; the ids returned are the accepted ones, anything else was rejected (lease lost).
-- $1 ids bigint[], $2 lease_tokens bigint[], $3 states text[] (completed | scheduled | failed |
-- pending | cancelled), $4 results text[] (JSON or NULL), $5 errors text[] (JSON or NULL),
-- $6 payloads text[] (JSON to replace the payload, e.g. a batch job's failed items, or NULL),
-- $7 delays float8[] (seconds until run_at for scheduled/pending, else NULL),
-- $8 give_back boolean[] (true: the attempt is not counted, e.g. a graceful-stop release),
-- $9 now timestamptz (NULL: the database clock).
-- A job whose unique_key a replace/preserve_run_at/supersede took over while it ran
-- (replaced_by, migration 0008) is never run again: a retry is settled as failed, a give-back
-- as cancelled (graphile-worker sets such a job's attempts to max_attempts).
-- A retry delay is capped at 100 years: run_at must stay inside its domain (job_run_at).
-- When a job a Queue.wait() caller marked (job_watch.sql) reaches a final state, one
-- notification 'f' wakes the callers.
WITH now AS (
    SELECT coalesce($9::timestamptz, now()) AS ts
), done AS (
UPDATE /*schema*/.jobs AS j
SET state = CASE WHEN j.replaced_by IS NULL OR u.state NOT IN ('scheduled', 'pending')
                 THEN u.state::/*schema*/.job_state
                 WHEN u.give_back THEN 'cancelled'::/*schema*/.job_state
                 ELSE 'failed'::/*schema*/.job_state END,
    result = CASE WHEN u.state = 'completed' THEN u.result::jsonb ELSE j.result END,
    -- the error's time is the database's (the worker's clock may be off)
    error = coalesce(
        u.error::jsonb || jsonb_build_object('at', (SELECT ts FROM now)),
        CASE WHEN j.replaced_by IS NOT NULL AND u.give_back THEN jsonb_build_object(
            'message', 'replaced by job ' || j.replaced_by || ' while running: not run again',
            'type', 'Replaced', 'traceback', '', 'attempt', j.attempts,
            'at', (SELECT ts FROM now)) END,
        j.error),
    payload = coalesce(u.payload::jsonb, j.payload),
    -- both branches of the domain's type: a completion (no delay) keeps run_at unchecked
    run_at = CASE WHEN u.delay IS NULL OR j.replaced_by IS NOT NULL THEN j.run_at
                  ELSE ((SELECT ts FROM now) + make_interval(secs => least(u.delay, /*schema*/.max_delay_seconds())))
                       ::/*schema*/.job_run_at END,
    attempts = CASE WHEN u.give_back THEN greatest(j.attempts - 1, 0) ELSE j.attempts END,
    finished_at = CASE WHEN u.state IN ('completed', 'failed', 'cancelled')
                            OR j.replaced_by IS NOT NULL
                       THEN (SELECT ts FROM now) END,
    started_at = CASE WHEN u.give_back THEN NULL ELSE j.started_at END,
    -- lease_token is kept: job_outcomes_settled tells a resend's fate by it
    locked_by = NULL,
    lease_expires_at = NULL,
    cancel_requested = false
FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::float8[], $8::boolean[])
     AS u(id, lease_token, state, result, error, payload, delay, give_back)
WHERE j.id = u.id
  AND j.state = 'running'
  AND j.lease_token = u.lease_token
RETURNING j.id, j.state, j.queue_name, j.waited
), notified AS (
    SELECT /*schema*/.notify_workers('f')
    -- only for a job a Queue.wait() caller marked (job_watch.sql)
    WHERE EXISTS (SELECT 1 FROM done WHERE done.state IN ('completed', 'failed', 'cancelled')
                                         AND done.waited)
    UNION ALL
    -- a finished job of a serial queue lets its successor run: wake the workers
    SELECT /*schema*/.notify_workers('')
    WHERE EXISTS (SELECT 1 FROM done WHERE done.state IN ('completed', 'failed', 'cancelled')
                                         AND done.queue_name IS NOT NULL)
)
-- x.n is selected so the planner cannot remove the join (and with it the notification)
SELECT d.id, x.n AS notified FROM done AS d LEFT JOIN (SELECT count(*) AS n FROM notified) AS x ON true
