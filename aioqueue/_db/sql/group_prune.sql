-- group_prune: delete up to $2 groups that finished more than $1 seconds ago (their members are
-- past retention too: the pruner passes the longest retention of the three finished states).
-- $1 retention_seconds float8, $2 limit integer (at most 1000), $3 now timestamptz|NULL.
-- Open (unsealed) and unfinished groups are never deleted. Uses the partial index
-- job_groups_finished; SKIP LOCKED so N workers can prune at once and a member settling into
-- its group is never blocked. Returns the number of groups deleted.
WITH doomed AS (
    SELECT d.id
    FROM (
        -- The constant inner LIMIT bounds the plan's cost at any table size (job_prune).
        SELECT g.id
        FROM /*schema*/.job_groups AS g
        WHERE g.finished_at IS NOT NULL
          AND g.finished_at < coalesce($3::timestamptz, now()) - make_interval(secs => $1::float8)
        ORDER BY g.finished_at
        LIMIT 1000
        FOR UPDATE SKIP LOCKED
    ) AS d
    LIMIT $2::integer
), deleted AS (
    -- ids as an array: a join here hash-joins a seq scan of every group
    DELETE FROM /*schema*/.job_groups AS g
    WHERE g.id = ANY (ARRAY(SELECT d.id FROM doomed AS d))
    RETURNING 1
)
SELECT count(*)::integer AS deleted FROM deleted
