-- job_progress_many: store the latest progress report of jobs (ctx.progress), fenced by the
-- lease token of the attempt that reported (kept after it finishes: a report written just after
-- its completion still lands; one from an attempt this worker lost does not). progress and
-- progress_message are not indexed, so the update stays HOT.
-- $1 ids bigint[], $2 lease_tokens bigint[], $3 fractions float8[], $4 messages text[].
-- One notification 'p' wakes Queue.wait(on_progress=) callers when one of the jobs is waited for.
WITH done AS (
    UPDATE /*schema*/.jobs AS j
    SET progress = u.fraction, progress_message = u.message
    FROM unnest($1::bigint[], $2::bigint[], $3::float8[], $4::text[])
         AS u(id, lease_token, fraction, message)
    WHERE j.id = u.id AND j.lease_token = u.lease_token
    RETURNING j.id, j.waited
), notified AS (
    SELECT /*schema*/.notify_workers('p')
    WHERE EXISTS (SELECT 1 FROM done WHERE done.waited)
)
-- x.n is selected so the planner cannot remove the join (and with it the notification)
SELECT d.id, x.n AS notified FROM done AS d LEFT JOIN (SELECT count(*) AS n FROM notified) AS x ON true
