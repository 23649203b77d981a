-- job_family: a job's parents and children (depends_on edges), for Queue.job_family and the
-- dashboard. $1 id bigint, $2 limit integer (per direction). Jobs in history (migration 0011)
-- included.
(SELECT 'parent' AS relation, p.id, p.kind, p.state::text AS state
 FROM /*schema*/.job_deps AS d
 JOIN (SELECT * FROM /*schema*/.jobs
       UNION ALL SELECT * FROM /*schema*/.jobs_history) AS p ON p.id = d.parent_id
 WHERE d.child_id = $1::bigint
 ORDER BY p.id LIMIT $2::integer)
UNION ALL
(SELECT 'child' AS relation, c.id, c.kind, c.state::text AS state
 FROM /*schema*/.job_deps AS d
 JOIN (SELECT * FROM /*schema*/.jobs
       UNION ALL SELECT * FROM /*schema*/.jobs_history) AS c ON c.id = d.child_id
 WHERE d.parent_id = $1::bigint
 ORDER BY c.id LIMIT $2::integer)
