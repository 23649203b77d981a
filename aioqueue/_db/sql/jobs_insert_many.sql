-- jobs_insert_many: keyless specs, one or many (no unique_key, max_delay or workflow keys:
-- nothing to dedupe, so one INSERT instead of the add_jobs function, which holds every
-- on_conflict mode). Same columns, defaults and wake-up as add_jobs.
-- $1 specs text: a JSON array of specs as _spec.py encodes them; $2 now timestamptz|NULL (the
-- database clock); $3 notify_due boolean: false leaves waking workers for due jobs to the
-- caller after its commit (wake_after_commit), because a transaction that NOTIFYs holds a
-- database-wide lock through its commit, which serialises concurrent enqueues. A batch with
-- no due job is always notified here ('t:' hint of its earliest run_at).
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
), due AS (
    SELECT bool_or(ins.state = 'pending') AS now, min(ins.run_at) AS first FROM ins
), wake AS (
    SELECT /*schema*/.notify_workers(
               CASE WHEN due.now THEN '' ELSE 't:' || extract(epoch FROM due.first)::text END)
    FROM due
    WHERE due.first IS NOT NULL AND ($3::boolean OR NOT due.now)
)
-- wake is read so that it runs (a CTE nobody reads is never run)
SELECT string_agg(ins.id::text, ',' ORDER BY ins.id) AS ids,
       (SELECT due.now AND NOT $3::boolean FROM due) AS wake_after_commit,
       (SELECT count(*) FROM wake) AS notified
FROM ins
