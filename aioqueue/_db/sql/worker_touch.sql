-- worker_touch: this worker is alive (run on its heartbeat; touches last_seen_at only, which
-- is not indexed, so the update stays HOT). $1 worker_id text, $2 now timestamptz|NULL.
-- Returns the id, or no row when the row is gone (pruned): the worker then registers again.
UPDATE /*schema*/.workers AS w
SET last_seen_at = coalesce($2::timestamptz, now())
WHERE w.id = $1::text
RETURNING w.id
