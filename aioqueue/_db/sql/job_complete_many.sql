-- job_complete_many: the completer's fast path when every outcome of a flush is `completed`
-- (the common case), fenced exactly like job_finish_many: a job is completed only while it is
-- running under the lease (claim) it ran under.
-- $1 ids text ('{...}' bigint[] literal), $2 by_id text (a JSON object: the id as text ->
-- [lease_token, result]), $3 now timestamptz|NULL. Text, not arrays: asyncpg's array encoder
-- costs about a microsecond of Python per element, more than the rest of the job.
-- No join: the jobs are read by id (jobs_running, id = ANY) and each looks its token and
-- result up in the object. Joined to the unnested arrays instead, the planner hashed every
-- worker's running jobs for each batch whenever its statistics said few rows run (after an
-- ANALYZE of a fresh backlog: a batch of 5 among 4,000 running took ~3 ms instead of 0.25),
-- and other join orders rescanned the arrays once per job. The args CTE and the scalar
-- subqueries make each text parse once per statement (initplans), in a generic plan too.
-- Returns the accepted ids; one notification 'f' wakes Queue.wait() callers when one of the jobs
-- is waited for (job_watch.sql), and one '' wakes workers when a finished job had a queue_name
-- (its successor in the queue can run now). No notification at all in the common case: a
-- NOTIFY holds a database-wide lock through the commit, which would serialise all workers'
-- completions.
WITH args AS MATERIALIZED (
    SELECT $1::text::bigint[] AS ids, $2::text::jsonb AS by_id
), done AS (
    UPDATE /*schema*/.jobs AS j
    SET state = 'completed',
        result = (SELECT by_id FROM args) -> j.id::text -> 1,
        finished_at = coalesce($3::timestamptz, now()),
        -- lease_token is kept: job_outcomes_settled tells a resend's fate by it
        locked_by = NULL,
        lease_expires_at = NULL
    WHERE j.id = ANY ((SELECT ids FROM args)::bigint[])
      AND j.state = 'running'
      AND j.lease_token = ((SELECT by_id FROM args) -> j.id::text ->> 0)::bigint
    RETURNING j.id, j.queue_name, j.waited
), notified AS (
    SELECT /*schema*/.notify_workers('f')
    WHERE EXISTS (SELECT 1 FROM done WHERE done.waited)
    UNION ALL
    SELECT /*schema*/.notify_workers('')
    WHERE EXISTS (SELECT 1 FROM done WHERE done.queue_name IS NOT NULL)
)
-- x.n is selected so the planner cannot remove the join (and with it the notifications)
SELECT d.id, x.n AS notified FROM done AS d LEFT JOIN (SELECT count(*) AS n FROM notified) AS x ON true
