-- stats_counts: jobs per kind and state (a full count: an admin query, not for the hot path).
SELECT kind, state::text AS state, count(*)::bigint AS count
FROM /*schema*/.jobs
GROUP BY kind, state
ORDER BY kind, state
