-- jobs_insert_many: Queue.enqueue_many's fast path for specs WITHOUT a unique_key or max_delay
-- (nothing to dedupe: the on_conflict modes all live in add_jobs). Same columns, defaults and
-- wake-up as add_jobs: one notification per call, '' when a job is due now, else
-- 't:<epoch>' of the earliest run_at; skipped while the notification queue is over half full.
-- $1 specs text: a JSON array of specs as _spec.encode_specs makes them; $2 now timestamptz
-- (NULL: the database clock).
-- Returns one row: the ids, sorted (which is input order: rows are inserted in it and ids come
-- from the identity sequence as they are), as one comma-separated text (jobs_insert_bare.sql).
WITH now AS (
    SELECT coalesce($2::timestamptz, now()) AS ts
), ins AS (
    INSERT INTO /*schema*/.jobs AS j
        (kind, payload, state, priority, run_at, max_attempts, queue_name, flags, created_at,
         concurrency_key)
    SELECT s.kind,
           coalesce(s.payload, 'null'::jsonb),  -- JSON null arrives as SQL NULL
           CASE WHEN t.run_at > n.ts THEN 'scheduled'::/*schema*/.job_state
                ELSE 'pending'::/*schema*/.job_state END,
           coalesce(s.priority, 0),
           t.run_at,
           s.max_attempts,
           s.queue_name,
           coalesce(s.flags, '{}'::text[]),
           n.ts,
           s.concurrency_key
    FROM now AS n,
         ROWS FROM (jsonb_to_recordset($1::text::jsonb)
             AS (kind text, payload jsonb, priority smallint, run_at timestamptz,
                 delay double precision, max_attempts integer, queue_name text, flags text[],
                 concurrency_key text))
             WITH ORDINALITY AS s(kind, payload, priority, run_at, delay, max_attempts,
                                  queue_name, flags, concurrency_key, ord),
         LATERAL (SELECT coalesce(s.run_at,
                                  n.ts + make_interval(secs => coalesce(s.delay, 0))) AS run_at) AS t
    ORDER BY s.ord
    RETURNING j.id, j.state, j.run_at
), wake AS (
    SELECT CASE WHEN pg_notification_queue_usage() <= 0.5 THEN
               pg_notify(/*channel*/,
                         CASE WHEN bool_or(ins.state = 'pending') THEN ''
                              ELSE 't:' || extract(epoch FROM min(ins.run_at))::text END)
           END AS sent
    FROM ins
    HAVING count(*) > 0
)
-- notified is selected so that the wake CTE runs (a CTE nobody reads is never run)
SELECT string_agg(ins.id::text, ',' ORDER BY ins.id) AS ids, (SELECT count(*) FROM wake) AS notified
FROM ins
