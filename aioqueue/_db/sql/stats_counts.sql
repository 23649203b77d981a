-- stats_counts: jobs per kind and state (a full count: an admin query, not for the hot path).
-- History included (migration 0011).
SELECT kind, state::text AS state, count(*)::bigint AS count
FROM (SELECT * FROM /*schema*/.jobs
      UNION ALL SELECT * FROM /*schema*/.jobs_history) AS j
GROUP BY kind, state
ORDER BY kind, state
