-- flow_depth: waiting jobs (pending and scheduled) of kind $1, counted up to $2 (bigint): one
-- range of jobs_claim, never more than $2 entries.
SELECT count(*) AS depth
FROM (SELECT 1 FROM /*schema*/.jobs AS j
      WHERE j.kind = $1::text AND j.state IN ('pending', 'scheduled')
      LIMIT $2::bigint) AS d
