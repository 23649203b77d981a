-- demo_counts: jobs per kind and state (small tables only: no index needed).
SELECT kind, state::text AS state, count(*) AS count
FROM /*schema*/.jobs
GROUP BY kind, state
ORDER BY kind, state
