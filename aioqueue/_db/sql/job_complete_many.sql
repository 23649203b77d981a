-- job_complete_many: the completer's fast path when every outcome of a flush is `completed`
-- (the common case): three arrays instead of eight, fenced exactly like job_finish_many.
-- The arrays travel as text ('{1,2,3}' and one JSON array of the results): asyncpg's array
-- encoder costs about a microsecond of Python per element, more than the rest of the job.
-- $1 ids text ('{...}' bigint[] literal), $2 lease_tokens text (same), $3 results text (a JSON
-- array, one value per id), $4 now timestamptz|NULL.
-- Returns the accepted ids; one notification 'f' wakes Queue.wait() callers when one of the jobs
-- is waited for (job_watch.sql), and one '' wakes workers when a finished job had a queue_name
-- (its successor in the queue can run now). No notification at all in the common case: a
-- NOTIFY holds a database-wide lock through the commit, which would serialise all workers'
-- completions.
-- `(j.state = 'running') IS TRUE` on purpose: a plain `j.state = 'running'` lets the planner
-- read the jobs through jobs_running, and when its statistics say few rows run (after an
-- ANALYZE of a fresh backlog) it hashes every worker's running jobs for each batch: a batch
-- of 5 among 4,000 running took 1.7-2.8 ms instead of 0.2. This way each id is one
-- primary-key probe (tests/test_plans.py guards it).
WITH done AS (
    UPDATE /*schema*/.jobs AS j
    SET state = 'completed',
        result = u.result,
        finished_at = coalesce($4::timestamptz, now()),
        lease_token = NULL,
        locked_by = NULL,
        lease_expires_at = NULL
    FROM unnest($1::text::bigint[], $2::text::bigint[],
                ARRAY(SELECT r.value FROM jsonb_array_elements($3::text::jsonb)
                      WITH ORDINALITY AS r(value, n) ORDER BY r.n))
         AS u(id, lease_token, result)
    WHERE j.id = u.id
      AND (j.state = 'running') IS TRUE
      AND j.lease_token = u.lease_token
    RETURNING j.id, j.queue_name, j.waited
), notified AS (
    SELECT pg_notify(/*channel*/, 'f')
    WHERE EXISTS (SELECT 1 FROM done WHERE done.waited) AND pg_notification_queue_usage() <= 0.5
    UNION ALL
    SELECT pg_notify(/*channel*/, '')
    WHERE EXISTS (SELECT 1 FROM done WHERE done.queue_name IS NOT NULL)
      AND pg_notification_queue_usage() <= 0.5
)
-- x.n is selected so the planner cannot remove the join (and with it the notifications)
SELECT d.id, x.n AS notified FROM done AS d LEFT JOIN (SELECT count(*) AS n FROM notified) AS x ON true
