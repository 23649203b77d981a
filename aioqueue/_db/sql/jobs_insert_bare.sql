-- jobs_insert_bare: Queue.enqueue_many's path when every spec is only {kind, payload} (the
-- common bulk call): every other column takes its default (due now, pending), and reading two
-- fields per element instead of jsonb_to_recordset's nine (jobs_insert_many) is what the
-- enqueue_many benchmark measures (benchmarks/RESULTS.md). One notification per call.
-- $1 specs text: a JSON array of {"kind": ..., "payload": ...} objects.
-- Returns one row: the ids, sorted (which is input order: rows are inserted in it and ids come
-- from the identity sequence as they are), as one comma-separated text: one value instead of
-- a row per job, and no bigint[] (whose type introspection each pooled connection pays once).
WITH ins AS (
    INSERT INTO /*schema*/.jobs AS j (kind, payload)
    SELECT a.spec ->> 'kind', a.spec -> 'payload'
    FROM jsonb_array_elements($1::text::jsonb) WITH ORDINALITY AS a(spec, ord)
    ORDER BY a.ord
    RETURNING j.id
), wake AS (
    SELECT /*schema*/.notify_workers('') WHERE EXISTS (SELECT 1 FROM ins)
)
-- wake is read so that it runs (a CTE nobody reads is never run)
SELECT string_agg(ins.id::text, ',' ORDER BY ins.id) AS ids, (SELECT count(*) FROM wake) AS notified
FROM ins
