-- flow_status: every kind with flow settings, its running jobs (overall and the busiest keys),
-- and its due jobs held back (throttled: due, not claimed because of a limit or a pause);
-- running counts read jobs_running (bounded by the workers' total concurrency), the held-back
-- count reads at most 10001 due rows per kind.
SELECT f.kind, f.concurrency, f.key_concurrency, f.rate_n, f.rate_seconds, f.paused,
       f.max_depth, f.key_rate_n, f.key_rate_seconds,
       (SELECT count(*) FROM /*schema*/.jobs AS j
        WHERE j.state = 'running' AND j.kind = f.kind) AS running,
       (SELECT count(DISTINCT j.concurrency_key) FROM /*schema*/.jobs AS j
        WHERE j.state = 'running' AND j.kind = f.kind) AS running_keys,
       (SELECT coalesce(max(c.n), 0) FROM (
            SELECT count(*) AS n FROM /*schema*/.jobs AS j
            WHERE j.state = 'running' AND j.kind = f.kind AND j.concurrency_key IS NOT NULL
            GROUP BY j.concurrency_key) AS c) AS busiest_key_running,
       CASE WHEN f.gated THEN (
            SELECT count(*) FROM (
                SELECT 1 FROM /*schema*/.jobs AS j
                WHERE j.kind = f.kind AND j.state IN ('pending', 'scheduled')
                  AND j.run_at <= now()
                LIMIT 10001) AS d)
            ELSE 0 END AS throttled
FROM /*schema*/.flow_limits AS f
ORDER BY f.kind
