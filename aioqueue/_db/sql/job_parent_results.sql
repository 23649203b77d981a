-- job_parent_results: the parents of a job (depends_on) with their state and result
-- (ctx.parent_results), by the edges' child index. $1 child id bigint.
-- Parents in history (migration 0011) too.
SELECT p.id, p.state::text AS state, p.result::text AS result
FROM /*schema*/.job_deps AS d
JOIN (SELECT * FROM /*schema*/.jobs
      UNION ALL SELECT * FROM /*schema*/.jobs_history) AS p ON p.id = d.parent_id
WHERE d.child_id = $1::bigint
ORDER BY p.id
