-- group_get: one group's counts. $1 id bigint.
SELECT id, total, completed, failed, cancelled, sealed, callback_id, created_at, finished_at
FROM /*schema*/.job_groups
WHERE id = $1::bigint
