-- sync_add_jobs: aioqueue.sync's enqueue on a DB-API connection (psycopg 3, Django), in the
-- caller's transaction, through add_jobs (every on_conflict mode; workers woken at commit).
-- One placeholder in the format paramstyle both drivers share: the JSON array of specs.
-- Returns (id, deduped) per spec, in input order.
SELECT r.id, r.deduped
FROM /*schema*/.add_jobs(%s::text::jsonb) AS r
ORDER BY r.ord
