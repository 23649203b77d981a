-- job_lineage: the chain a job belongs to through rescheduled_from (retries of failed jobs, cron
-- occurrences): up to $2 ancestors and $2 descendants of job $1, oldest first. Pruned links end
-- the chain.
WITH RECURSIVE up AS (
    SELECT id, rescheduled_from, 0 AS depth FROM /*schema*/.jobs WHERE id = $1::bigint
    UNION ALL
    SELECT j.id, j.rescheduled_from, up.depth - 1
    FROM /*schema*/.jobs AS j JOIN up ON j.id = up.rescheduled_from
    WHERE up.depth > -$2::integer
), down AS (
    SELECT id, 0 AS depth FROM /*schema*/.jobs WHERE id = $1::bigint
    UNION ALL
    SELECT j.id, down.depth + 1
    FROM /*schema*/.jobs AS j JOIN down ON j.rescheduled_from = down.id
    WHERE down.depth < $2::integer
), chain AS (
    SELECT id, depth FROM up
    UNION
    SELECT id, depth FROM down
)
SELECT j.id, j.kind, j.payload::text AS payload, j.state::text AS state, j.priority, j.run_at,
       j.attempts, j.max_attempts, j.unique_key, j.queue_name, j.flags, j.result::text AS result,
       j.error::text AS error, j.locked_by, j.lease_expires_at, j.rescheduled_from, j.created_at,
       j.started_at, j.finished_at
FROM chain JOIN /*schema*/.jobs AS j USING (id)
ORDER BY chain.depth, j.id
