-- job_lineage: the chain a job belongs to through rescheduled_from (retries of failed jobs, cron
-- occurrences): up to $2 ancestors and $2 descendants of job $1, oldest first. Pruned links end
-- the chain. Reads the hot table and its history (migration 0011) as one: each step is an index
-- probe of both.
WITH RECURSIVE up AS (
    SELECT a.id, a.rescheduled_from, 0 AS depth
    FROM (SELECT * FROM /*schema*/.jobs
          UNION ALL SELECT * FROM /*schema*/.jobs_history) AS a
    WHERE a.id = $1::bigint
    UNION ALL
    SELECT j.id, j.rescheduled_from, up.depth - 1
    FROM (SELECT * FROM /*schema*/.jobs
          UNION ALL SELECT * FROM /*schema*/.jobs_history) AS j
    JOIN up ON j.id = up.rescheduled_from
    WHERE up.depth > -$2::integer
), down AS (
    SELECT a.id, 0 AS depth
    FROM (SELECT * FROM /*schema*/.jobs
          UNION ALL SELECT * FROM /*schema*/.jobs_history) AS a
    WHERE a.id = $1::bigint
    UNION ALL
    SELECT j.id, down.depth + 1
    FROM (SELECT * FROM /*schema*/.jobs
          UNION ALL SELECT * FROM /*schema*/.jobs_history) AS j
    JOIN down ON j.rescheduled_from = down.id
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
FROM chain
JOIN (SELECT * FROM /*schema*/.jobs
      UNION ALL SELECT * FROM /*schema*/.jobs_history) AS j USING (id)
ORDER BY chain.depth, j.id
