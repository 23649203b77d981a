-- job_insert: Queue.enqueue's fast path for one job WITHOUT a unique_key (nothing to dedupe:
-- the on_conflict modes all live in add_jobs). Same columns, defaults and wake-up as add_jobs:
-- one notification, '' when due now or 't:<epoch>' for a future run_at, skipped while the
-- notification queue is over half full. With $10 false a due-now job is NOT notified here: the
-- caller wakes workers right after the commit instead (wake_after_commit), because a
-- transaction that NOTIFYs holds a database-wide lock through its commit flush, which
-- serialises concurrent enqueues (no group commit).
-- $1 kind text, $2 payload text (JSON), $3 priority smallint, $4 run_at timestamptz|NULL,
-- $5 delay float8|NULL, $6 max_attempts integer|NULL, $7 queue_name text|NULL,
-- $8 flags text[]|NULL, $9 now timestamptz|NULL, $10 notify_due boolean,
-- $11 concurrency_key text|NULL (0010).
INSERT INTO /*schema*/.jobs AS j
    (kind, payload, state, priority, run_at, max_attempts, queue_name, flags, created_at,
     concurrency_key)
VALUES (
    $1::text, $2::text::jsonb,
    CASE WHEN coalesce($4::timestamptz,
                       coalesce($9::timestamptz, now()) + make_interval(secs => coalesce($5::float8, 0)))
              > coalesce($9::timestamptz, now())
         THEN 'scheduled'::/*schema*/.job_state ELSE 'pending'::/*schema*/.job_state END,
    $3::smallint,
    coalesce($4::timestamptz,
             coalesce($9::timestamptz, now()) + make_interval(secs => coalesce($5::float8, 0))),
    $6::integer, $7::text, coalesce($8::text[], '{}'), coalesce($9::timestamptz, now()),
    $11::text)
RETURNING j.id, false AS deduped,
    (j.state = 'pending' AND NOT $10::boolean) AS wake_after_commit,
    CASE WHEN (j.state <> 'pending' OR $10::boolean) AND pg_notification_queue_usage() <= 0.5
         THEN pg_notify(/*channel*/, CASE WHEN j.state = 'pending' THEN ''
                                         ELSE 't:' || extract(epoch FROM j.run_at)::text END)
    END IS NULL AS notify_skipped
