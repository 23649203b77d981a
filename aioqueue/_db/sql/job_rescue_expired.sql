-- job_rescue_expired: give back jobs whose lease expired (their worker died or stalled).
-- The attempt counts: retried after exp(min(attempts, 10)) seconds, or failed when exhausted.
-- Safe on N workers at once (SKIP LOCKED); a job completed in between no longer matches.
-- $1 limit integer (at most 1000), $2 now timestamptz|NULL, $3 default_max_attempts integer
-- (config.DEFAULT_MAX_ATTEMPTS: a claim sets max_attempts, so only a row made running by hand
-- lacks it). Uses the partial index jobs_running.
WITH now AS (
    SELECT coalesce($2::timestamptz, now()) AS ts
), expired AS (
    -- The constant inner LIMIT bounds the plan's cost at any table size: a generic plan costs
    -- LIMIT $1 as a tenth of all running jobs, over jit_above_cost on a big table (JIT-compiled
    -- on every run where JIT is on). Rows locked beyond $1 are simply left for the next round.
    SELECT e.id
    FROM (
        SELECT j.id
        FROM /*schema*/.jobs AS j
        WHERE j.state = 'running'
          AND j.lease_expires_at < (SELECT ts FROM now)
        ORDER BY j.id
        LIMIT 1000
        FOR UPDATE SKIP LOCKED
    ) AS e
    LIMIT $1::integer
), rescued AS (
UPDATE /*schema*/.jobs AS j
SET state = CASE WHEN j.attempts >= coalesce(j.max_attempts, $3::integer)
                 THEN 'failed'::/*schema*/.job_state
                 ELSE 'scheduled'::/*schema*/.job_state END,
    run_at = CASE WHEN j.attempts >= coalesce(j.max_attempts, $3::integer) THEN j.run_at
                  ELSE (SELECT ts FROM now)
                       + make_interval(secs => exp(least(j.attempts, 10))) END,
    finished_at = CASE WHEN j.attempts >= coalesce(j.max_attempts, $3::integer)
                       THEN (SELECT ts FROM now) END,
    error = jsonb_build_object(
        'message', 'worker lost: lease expired (held by ' || coalesce(j.locked_by, '?') || ')',
        'type', 'LeaseExpired',
        'traceback', '',
        'attempt', j.attempts,
        'at', (SELECT ts FROM now)),
    lease_token = NULL,
    locked_by = NULL,
    lease_expires_at = NULL,
    cancel_requested = false
FROM expired AS e
WHERE j.id = e.id
  AND j.state = 'running'
RETURNING j.id, j.kind, j.state::text AS state, j.attempts
), notified AS (
    SELECT /*schema*/.notify_workers('f')
    WHERE EXISTS (SELECT 1 FROM rescued WHERE rescued.state = 'failed')
)
-- x.n is selected so the planner cannot remove the join (and with it the notification)
SELECT r.*, x.n AS notified FROM rescued AS r LEFT JOIN (SELECT count(*) AS n FROM notified) AS x ON true
