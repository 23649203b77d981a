-- job_history_move: move up to $2 finished jobs of state $1 from jobs to jobs_history, oldest
-- first, in one statement (one snapshot sees each job in exactly one table). Only rows whose
-- finished_at falls inside the state's partitions (history_prepare makes them ahead; older
-- rows are past retention and left to job_prune). A parent stays while a child of it has not
-- finished (the child's claim reads the parent's result through the edge; keeping the parent
-- in jobs also keeps link_job's lock order). SKIP LOCKED: N workers move at once and a row a
-- claim, a cancel or a retry holds is left for the next pass.
-- $1 state text (completed | failed | cancelled), $2 limit integer (at most 1000), $3 older_than
-- float8: only jobs finished at least that many seconds ago (the hot table keeps a minute of
-- finished jobs for whoever looks there first), $4 now timestamptz|NULL.
-- Returns the number of rows moved.
WITH picked AS (
    -- the constant inner LIMIT bounds the plan's cost at any table size (job_prune)
    SELECT d.id
    FROM (
        SELECT j.id
        FROM /*schema*/.jobs AS j
        WHERE j.state IN ('completed', 'cancelled', 'failed')
          AND j.state = $1::/*schema*/.job_state
          -- scalar subqueries: run once, then bounds of the jobs_finished index range scan
          AND j.finished_at >= (SELECT min(p.lower) FROM /*schema*/.jobs_history_partitions AS p
                                WHERE p.state = $1::/*schema*/.job_state)
          AND j.finished_at < (SELECT max(p.upper) FROM /*schema*/.jobs_history_partitions AS p
                               WHERE p.state = $1::/*schema*/.job_state)
          AND j.finished_at < coalesce($4::timestamptz, now()) - make_interval(secs => $3::float8)
          AND NOT (j.has_children AND EXISTS (
                SELECT 1 FROM /*schema*/.job_deps AS e
                JOIN /*schema*/.jobs AS c ON c.id = e.child_id
                WHERE e.parent_id = j.id
                  AND c.state IN ('waiting', 'pending', 'scheduled', 'running')
                -- OFFSET 0: probed per parent; else the planner may pick a hashed subplan
                -- that reads every active job (job_prune's guard in tests/db/test_plans.py)
                OFFSET 0))
        ORDER BY j.finished_at
        LIMIT 1000
        FOR UPDATE SKIP LOCKED
    ) AS d
    LIMIT $2::integer
), moved AS (
    DELETE FROM /*schema*/.jobs AS j USING picked AS p WHERE j.id = p.id
    RETURNING j.*
), inserted AS (
    INSERT INTO /*schema*/.jobs_history SELECT * FROM moved
    RETURNING 1
)
SELECT count(*)::integer AS moved FROM inserted
