-- worker_register: insert this worker's row, or refresh it (the same id registering again,
-- e.g. after its row was pruned while the worker was cut off from the database).
-- $1 worker_id text, $2 hostname text, $3 pid integer, $4 kinds text[],
-- $5 started_at timestamptz|NULL (NULL at the first registration: now), $6 now timestamptz|NULL.
-- Returns started_at (the database's time), for the worker to pass back when it re-registers.
INSERT INTO /*schema*/.workers AS w (id, hostname, pid, kinds, started_at, last_seen_at)
VALUES ($1::text, $2::text, $3::integer, $4::text[],
        coalesce($5::timestamptz, $6::timestamptz, now()), coalesce($6::timestamptz, now()))
ON CONFLICT (id) DO UPDATE
SET hostname = excluded.hostname,
    pid = excluded.pid,
    kinds = excluded.kinds,
    last_seen_at = excluded.last_seen_at
RETURNING w.started_at
