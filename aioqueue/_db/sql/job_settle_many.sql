-- job_settle_many: mark waiting jobs (waiting/pending/scheduled) completed or failed by hand
-- (graphile's completeJobs / permanentlyFailJobs). Running jobs are left to their worker.
-- $1 ids bigint[], $2 state text (completed | failed), $3 error text (JSON, for failed).
-- Returns the ids changed.
WITH changed AS (
    UPDATE /*schema*/.jobs AS j
    SET state = $2::text::/*schema*/.job_state,
        error = CASE WHEN $2::text = 'failed' THEN $3::text::jsonb ELSE j.error END,
        finished_at = now()
    WHERE j.id = ANY($1::bigint[])
      AND j.state IN ('waiting', 'pending', 'scheduled')
    RETURNING j.id
), notified AS (
    SELECT /*schema*/.notify_workers('f')
    WHERE EXISTS (SELECT 1 FROM changed)
)
-- x.n is selected so the planner cannot remove the join (and with it the notification)
SELECT c.id, x.n AS notified FROM changed AS c LEFT JOIN (SELECT count(*) AS n FROM notified) AS x ON true
