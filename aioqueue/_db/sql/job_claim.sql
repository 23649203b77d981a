-- job_claim: claim up to $4 due jobs of the given kinds, in priority order, in ONE statement.
-- $1 kinds text[], $2 default_max_attempts integer[] (aligned with $1), $3 forbidden_flags text[],
-- $4 batch integer (the worker's free slots), $5 worker_id text, $6 lease_seconds float8,
-- $7 now timestamptz (NULL: the database clock).
-- Each kind is one range of the partial index jobs_claim (kind, priority DESC, run_at, id), so
-- jobs of kinds this worker does not handle are never read (RELIABILITY E10). With several
-- kinds, an unlocked peek at the first $4 due jobs over all kinds splits the batch between
-- them, then each kind locks its share, skipping rows other workers hold; a lone kind locks $4
-- directly. Nothing is locked that is not claimed.
-- A job with a queue_name runs only when it is the lowest active id of its queue
-- (jobs_queue_active), so one job per queue runs at a time, in order, and its queue is not paused.
-- Kinds with a gated flow_limits row (a limit or a pause, 0010) are never claimed here: only
-- claim_gated() claims them, under their row's lock.
WITH now AS (
    -- The lease token: this transaction's id (unique per claim, and cheap) in the low 32 bits,
    -- 31 random bits above. Claims commit asynchronously, so after a crash a lost claim's
    -- transaction id can be handed out again; the random bits keep a worker that ran the lost
    -- claim from matching the new one.
    SELECT coalesce($7::timestamptz, now()) AS ts,
           (pg_current_xact_id()::text::bigint & 4294967295)
           | (floor(random() * 2147483648)::bigint << 32) AS token
), peek AS (
    SELECT p.kind
    FROM unnest($1::text[]) AS k(kind)
    CROSS JOIN LATERAL (
        SELECT j.kind, j.priority, j.run_at, j.id
        FROM /*schema*/.jobs AS j
        WHERE j.kind = k.kind
          AND j.state IN ('pending', 'scheduled')
          AND j.run_at <= (SELECT ts FROM now)
          AND NOT (j.flags && $3::text[])
          AND (j.queue_name IS NULL OR (
                NOT EXISTS (SELECT 1 FROM /*schema*/.flow_paused_queues AS q
                            WHERE q.queue_name = j.queue_name)
                AND NOT EXISTS (
                    SELECT 1 FROM /*schema*/.jobs AS h
                    WHERE h.queue_name = j.queue_name
                      AND h.state IN ('pending', 'scheduled', 'running')
                      AND h.id < j.id)))
        ORDER BY j.priority DESC, j.run_at, j.id
        LIMIT $4::integer
    ) AS p
    WHERE cardinality($1::text[]) > 1
      AND NOT EXISTS (SELECT 1 FROM /*schema*/.flow_limits AS f WHERE f.kind = k.kind AND f.gated)
    ORDER BY p.priority DESC, p.run_at, p.id
    LIMIT $4::integer
), share AS (
    SELECT kind, count(*) AS n FROM peek GROUP BY kind
    UNION ALL
    SELECT $1[1], $4::integer WHERE cardinality($1::text[]) = 1
      AND NOT EXISTS (SELECT 1 FROM /*schema*/.flow_limits AS f WHERE f.kind = $1[1] AND f.gated)
), candidates AS (
    SELECT c.id
    FROM share AS s
    CROSS JOIN LATERAL (
        SELECT j.id
        FROM /*schema*/.jobs AS j
        WHERE j.kind = s.kind
          AND j.state IN ('pending', 'scheduled')
          AND j.run_at <= (SELECT ts FROM now)
          AND NOT (j.flags && $3::text[])
          AND (j.queue_name IS NULL OR (
                NOT EXISTS (SELECT 1 FROM /*schema*/.flow_paused_queues AS q
                            WHERE q.queue_name = j.queue_name)
                AND NOT EXISTS (
                    SELECT 1 FROM /*schema*/.jobs AS h
                    WHERE h.queue_name = j.queue_name
                      AND h.state IN ('pending', 'scheduled', 'running')
                      AND h.id < j.id)))
        ORDER BY j.priority DESC, j.run_at, j.id
        LIMIT s.n
        FOR UPDATE OF j SKIP LOCKED
    ) AS c
), claimed AS (
    UPDATE /*schema*/.jobs AS j
    SET state = 'running',
        -- least(): a row written through SQL with attempts at the integer maximum must not
        -- make the whole claim fail (every worker would exit on it)
        attempts = least(j.attempts, 2147483646) + 1,
        -- $2 holds a default for every kind in $1, the only kinds claimed
        max_attempts = coalesce(j.max_attempts, ($2::integer[])[array_position($1::text[], j.kind)]),
        lease_token = (SELECT token FROM now),
        locked_by = $5::text,
        lease_expires_at = (SELECT ts FROM now) + make_interval(secs => $6::float8),
        started_at = (SELECT ts FROM now)
        -- cancel_requested is already false: only running rows ever have it set
    -- an array, not a join: the planner cannot estimate the lateral LIMITs and would hash-join a
    -- seq scan of the table; ids from an array are primary-key lookups
    WHERE j.id = ANY (ARRAY(SELECT id FROM candidates))
    -- Times as integer microseconds since the epoch and no empty array: decoding two
    -- timestamptz and a '{}' into Python objects cost the worker more than the rest of the row
    -- (the worker makes the datetimes once per distinct value). A time Python cannot hold (an
    -- infinity, BC, past year 9999: written through SQL) comes back NULL instead of failing the
    -- whole claim, and the worker fails that job.
    RETURNING j.id, j.kind, j.payload::text AS payload, j.attempts, j.max_attempts, j.lease_token,
              j.priority,
              CASE WHEN j.run_at >= '0001-01-01 00:00:00+00' AND j.run_at < '10000-01-01 00:00:00+00'
                   THEN (extract(epoch FROM j.run_at) * 1000000)::bigint END AS run_at_us,
              j.queue_name, nullif(j.flags, '{}') AS flags, j.unique_key,
              CASE WHEN j.created_at >= '0001-01-01 00:00:00+00' AND j.created_at < '10000-01-01 00:00:00+00'
                   THEN (extract(epoch FROM j.created_at) * 1000000)::bigint END AS created_at_us,
              j.meta::text AS meta  -- NULL unless enqueued with meta= (migration 0009)
)
-- in claim order: the worker starts them (and queues those claimed ahead) in this order
SELECT * FROM claimed ORDER BY priority DESC, run_at_us, id
