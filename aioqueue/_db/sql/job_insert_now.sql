-- job_insert_now: Queue.enqueue(kind, payload) with every option at its default, the most
-- common call. The columns take their defaults (pending, due now, priority 0), so the server
-- skips jobs_insert_many's JSON parsing and run_at/state expressions (the enqueue_single
-- benchmark, benchmarks/RESULTS.md).
-- $1 kind text, $2 payload text (JSON), $3 notify boolean: false leaves waking workers to the
-- caller after its commit (wake_after_commit; see jobs_insert_many.sql).
INSERT INTO /*schema*/.jobs AS j (kind, payload)
VALUES ($1::text, $2::text::jsonb)
RETURNING j.id,
    NOT $3::boolean AS wake_after_commit,
    CASE WHEN $3::boolean THEN /*schema*/.notify_workers('') END AS notified
