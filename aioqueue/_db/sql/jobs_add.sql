-- jobs_add: enqueue through add_jobs, which holds every on_conflict mode, dependencies and
-- groups (keyed and workflow specs; everything from aioqueue.sync, whose DB-API cursor runs
-- this text with %s placeholders: queries.sync_add_jobs_text).
-- $1 specs text: a JSON array of job specs; $2 now timestamptz (NULL: the database clock).
-- Returns (id, deduped) per spec, in input order.
SELECT r.id, r.deduped
FROM /*schema*/.add_jobs($1::text::jsonb, $2::timestamptz) AS r
ORDER BY r.ord
