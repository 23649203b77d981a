-- stats_workers: the live workers, seen within the last $1 seconds, oldest first.
-- $1 live_window_seconds float8, $2 now timestamptz|NULL.
SELECT w.id, w.hostname, w.pid, w.kinds, w.started_at, w.last_seen_at
FROM /*schema*/.workers AS w
WHERE w.last_seen_at >= coalesce($2::timestamptz, now()) - make_interval(secs => $1::float8)
ORDER BY w.started_at, w.id
