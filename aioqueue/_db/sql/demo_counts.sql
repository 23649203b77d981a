-- demo_counts: jobs per kind and state (small tables only: no index needed), the history
-- (migration 0011) included.
SELECT kind, state::text AS state, count(*) AS count
FROM (SELECT * FROM /*schema*/.jobs
      UNION ALL SELECT * FROM /*schema*/.jobs_history) AS j
GROUP BY kind, state
ORDER BY kind, state
