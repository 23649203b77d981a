-- 0005_workers: one row per running worker and the kinds it has handlers for, so that
-- `aioqueue status` can name the due kinds no live worker handles (RELIABILITY E1).
-- A worker inserts its row when it starts, refreshes last_seen_at on its heartbeat and deletes
-- the row when it stops; the row of a worker that crashed goes stale (status ignores rows not
-- seen for config.WORKER_LIVE_WINDOW) and the pruner deletes it after
-- config.WORKER_FORGET_AFTER. Workers are not tied to a queue_name. Times are the database's.

CREATE TABLE /*schema*/.workers (
    id           text PRIMARY KEY,  -- the worker's id: jobs.locked_by of the jobs it runs
    hostname     text NOT NULL,
    pid          integer NOT NULL,
    kinds        text[] NOT NULL,   -- the kinds it has handlers for (the kinds it claims)
    started_at   timestamptz NOT NULL DEFAULT now(),
    -- refreshed every few seconds: not indexed, so the update stays HOT
    last_seen_at timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 50);

-- Row-level security on, no policy: only the owner sees rows (as for jobs); see
-- examples/sql_least_privilege.sql for a worker role.
ALTER TABLE /*schema*/.workers ENABLE ROW LEVEL SECURITY;
