-- job_get: one job by id, in the hot table or in its history (migration 0011). $1 id bigint
SELECT id, kind, payload::text AS payload, state::text AS state, priority, run_at, attempts,
       max_attempts, unique_key, queue_name, flags, result::text AS result, error::text AS error,
       locked_by, lease_expires_at, rescheduled_from, created_at, started_at, finished_at,
       meta::text AS meta, progress, progress_message, group_id, pending_parents, concurrency_key
FROM (SELECT * FROM /*schema*/.jobs UNION ALL SELECT * FROM /*schema*/.jobs_history) AS j
WHERE id = $1::bigint
