-- stats_unhandled: kinds with due jobs (pending, or scheduled and due) that no live worker
-- (seen within the last $1 seconds) has a handler for: nothing will ever claim them
-- (RELIABILITY E1). $1 live_window_seconds float8, $2 now timestamptz|NULL.
-- Returns (kind, due) per kind, by kind. Counts first, so each kind is checked once.
WITH now AS (
    SELECT coalesce($2::timestamptz, now()) AS ts
), due AS (
    SELECT j.kind, count(*)::bigint AS due
    FROM /*schema*/.jobs AS j
    WHERE j.state IN ('pending', 'scheduled')
      AND j.run_at <= (SELECT ts FROM now)
    GROUP BY j.kind
)
SELECT d.kind, d.due
FROM due AS d
WHERE NOT EXISTS (
    SELECT 1
    FROM /*schema*/.workers AS w
    WHERE w.last_seen_at >= (SELECT ts FROM now) - make_interval(secs => $1::float8)
      AND d.kind = ANY (w.kinds)
)
ORDER BY d.kind
