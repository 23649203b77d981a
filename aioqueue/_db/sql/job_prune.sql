-- job_prune: delete up to $3 finished jobs of one state whose retention has passed.
-- $1 state text (completed | failed | cancelled), $2 retention_seconds float8, $3 limit integer
-- (at most 1000), $4 now timestamptz|NULL. Uses the partial index jobs_finished; SKIP LOCKED so
-- N workers can prune at once and claims are never blocked. Returns the number of rows deleted.
WITH doomed AS (
    -- The constant inner LIMIT bounds the plan's cost at any table size (job_rescue_expired).
    SELECT d.id
    FROM (
        SELECT j.id
        FROM /*schema*/.jobs AS j
        WHERE j.state IN ('completed', 'cancelled', 'failed')
          AND j.state = $1::/*schema*/.job_state
          AND j.finished_at < coalesce($4::timestamptz, now()) - make_interval(secs => $2::float8)
          -- a parent stays while a child of it has not finished (it may read its result)
          AND NOT (j.has_children AND EXISTS (
                SELECT 1 FROM /*schema*/.job_deps AS e
                JOIN /*schema*/.jobs AS c ON c.id = e.child_id
                WHERE e.parent_id = j.id
                  AND c.state IN ('waiting', 'pending', 'scheduled', 'running')
                -- OFFSET 0: probed per parent; else the planner may pick a hashed subplan
                -- that reads every active job (tests/db/test_plans.py)
                OFFSET 0))
        ORDER BY j.finished_at
        LIMIT 1000
        FOR UPDATE SKIP LOCKED
    ) AS d
    LIMIT $3::integer
), deleted AS (
    DELETE FROM /*schema*/.jobs AS j USING doomed AS d WHERE j.id = d.id
    RETURNING j.id, j.has_children, j.pending_parents
), edges AS (
    -- the deleted jobs' dependency edges (job_deps has no foreign keys: migration 0009)
    DELETE FROM /*schema*/.job_deps AS e
    USING deleted AS x
    WHERE (x.has_children AND e.parent_id = x.id)
       OR (x.pending_parents IS NOT NULL AND e.child_id = x.id)
    RETURNING 1
)
SELECT count(*)::integer AS deleted FROM deleted
WHERE (SELECT count(*) FROM edges) >= 0  -- reading edges makes its DELETE run
