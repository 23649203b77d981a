-- jobs_add: enqueue through add_jobs (every on_conflict mode lives there).
-- $1 specs text: a JSON array of job specs; $2 now timestamptz (NULL: the database clock).
-- Returns (id, deduped) per spec, in input order.
SELECT r.id, r.deduped
FROM /*schema*/.add_jobs($1::text::jsonb, $2::timestamptz) AS r
ORDER BY r.ord
