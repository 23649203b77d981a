-- job_cancel: cancel one active job. A job not running (waiting for parents too) becomes cancelled at once; a running job is
-- asked to stop (cancel_requested; its worker cancels the handler and records `cancelled`).
-- $1 id bigint, or NULL with $2 kind text + $3 unique_key text (cancel_by_key).
-- Returns the job's id and resulting state; no row: no such active job.
WITH target AS (
    SELECT j.id
    FROM /*schema*/.jobs AS j
    WHERE j.state IN ('waiting', 'pending', 'scheduled', 'running')
      AND (j.id = $1::bigint
           OR ($1::bigint IS NULL AND j.kind = $2::text AND j.unique_key = $3::text))
    FOR UPDATE
), changed AS (
    UPDATE /*schema*/.jobs AS j
    SET state = CASE WHEN j.state = 'running' THEN j.state
                     ELSE 'cancelled'::/*schema*/.job_state END,
        cancel_requested = (j.state = 'running'),
        finished_at = CASE WHEN j.state = 'running' THEN NULL ELSE now() END
    FROM target AS t
    WHERE j.id = t.id
    RETURNING j.id, j.state::text AS state
), notified AS (
    SELECT /*schema*/.notify_workers(CASE WHEN c.state = 'running' THEN 'c:' || c.id ELSE 'f' END)
    FROM changed AS c
)
-- x.n is selected so the planner cannot remove the join (and with it the notification)
SELECT c.id, c.state, x.n AS notified
FROM changed AS c LEFT JOIN (SELECT count(*) AS n FROM notified) AS x ON true
