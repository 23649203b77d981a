-- job_list: jobs newest first with optional filters and keyset pagination.
-- $1 kind text|NULL, $2 state text|NULL, $3 queue_name text|NULL, $4 before_id bigint|NULL
-- (the last id of the previous page), $5 limit integer. The hot table and its history (migration
-- 0011): a merge of their id indexes, newest first.
SELECT id, kind, payload::text AS payload, state::text AS state, priority, run_at, attempts,
       max_attempts, unique_key, queue_name, flags, result::text AS result, error::text AS error,
       locked_by, lease_expires_at, rescheduled_from, created_at, started_at, finished_at,
       concurrency_key
FROM (SELECT * FROM /*schema*/.jobs UNION ALL SELECT * FROM /*schema*/.jobs_history) AS j
WHERE ($1::text IS NULL OR kind = $1::text)
  AND ($2::text IS NULL OR state = $2::text::/*schema*/.job_state)
  AND ($3::text IS NULL OR queue_name = $3::text)
  AND ($4::bigint IS NULL OR id < $4::bigint)
ORDER BY id DESC
LIMIT $5::integer
