-- job_insert: Queue.enqueue's fast path for one job WITHOUT a unique_key (nothing to dedupe:
-- the on_conflict modes all live in add_jobs). Same columns, defaults and wake-up as add_jobs:
-- one notification, '' when due now or 't:<epoch>' for a future run_at, skipped while the
-- notification queue is over half full.
-- $1 kind text, $2 payload text (JSON), $3 priority smallint, $4 run_at timestamptz|NULL,
-- $5 delay float8|NULL, $6 max_attempts integer|NULL, $7 queue_name text|NULL,
-- $8 flags text[]|NULL, $9 now timestamptz|NULL.
WITH now AS (
    SELECT coalesce($9::timestamptz, now()) AS ts
), ins AS (
    INSERT INTO /*schema*/.jobs AS j
        (kind, payload, state, priority, run_at, max_attempts, queue_name, flags, created_at)
    SELECT $1::text, $2::text::jsonb,
           CASE WHEN r.run_at > n.ts THEN 'scheduled'::/*schema*/.job_state
                ELSE 'pending'::/*schema*/.job_state END,
           $3::smallint, r.run_at, $6::integer, $7::text, coalesce($8::text[], '{}'), n.ts
    FROM now AS n,
         LATERAL (SELECT coalesce($4::timestamptz,
                                  n.ts + make_interval(secs => coalesce($5::float8, 0)))
                  AS run_at) AS r
    RETURNING j.id, j.state, j.run_at
)
SELECT i.id, false AS deduped,
       (SELECT pg_notify(/*channel*/, CASE WHEN i.state = 'pending' THEN ''
                                          ELSE 't:' || extract(epoch FROM i.run_at)::text END)
        WHERE pg_notification_queue_usage() <= 0.5) IS NULL AS notify_skipped
FROM ins AS i
