-- 0010_flow_control: global concurrency limits per kind and per concurrency key, rate limits,
-- pause/resume of kinds and named queues (issue 20).
--
-- How a limit holds across every worker, by construction:
--   * flow_limits has one row per kind with any flow setting. A kind is "gated" when the row sets
--     a concurrency, a key concurrency, a rate limit (per kind or per key) or a pause.
--   * The ordinary claim (job_claim.sql) never claims a gated kind: it skips kinds whose row is
--     gated. Workers claim gated kinds only through claim_gated() below.
--   * claim_gated() is a VOLATILE plpgsql function. Its FIRST statement locks the gated rows of
--     the worker's kinds (in kind order, so workers never deadlock). Only then, in LATER
--     statements, does it count running jobs and claim. In READ COMMITTED each statement of a
--     VOLATILE function takes a fresh snapshot, so the counts include every claim committed
--     before this one got the lock, and no other claim of the kind can commit until this one
--     does. (Counting in the statement that takes the lock would count in a snapshot older
--     than the lock: the over-admission two peers shipped.) set_limits() updates the same row,
--     so a limit change is ordered with every claim too.
--   * Counting running jobs reads the rows in the partial index jobs_running (state =
--     'running'): bounded by the total concurrency of all workers, never by the backlog.
-- The one window not covered: a kind that had no gated row becomes gated while a claim
-- statement that started before the change is running; that one claim may still start its
-- batch under no limit. Declared limits (tasks.task(concurrency=...)) are written before a
-- worker's first claim, so they never hit that window.

ALTER TABLE /*schema*/.jobs ADD COLUMN concurrency_key text;
-- NOT VALID: the new column is NULL everywhere; new rows are checked.
ALTER TABLE /*schema*/.jobs ADD CONSTRAINT jobs_concurrency_key_length
    CHECK (octet_length(concurrency_key) BETWEEN 1 AND 256) NOT VALID;

-- Round robin over the keys of a kind (a loose index scan, key after key). Only keyed jobs are
-- in it: enqueues without a key do not maintain it.
CREATE INDEX jobs_claim_key
    ON /*schema*/.jobs (kind, concurrency_key, priority DESC, run_at, id)
    WHERE concurrency_key IS NOT NULL AND state IN ('pending', 'scheduled');

-- No row-level security on the two flow tables: they hold kinds and numbers, no payloads, and
-- a claimer that could not see a kind's row would claim it unlimited.
CREATE TABLE /*schema*/.flow_limits (
    kind            text PRIMARY KEY CHECK (octet_length(kind) BETWEEN 1 AND 128),
    concurrency     integer CHECK (concurrency >= 0),
    key_concurrency integer CHECK (key_concurrency >= 1),
    rate_n          integer CHECK (rate_n >= 1),
    rate_seconds    double precision CHECK (rate_seconds > 0 AND rate_seconds <= 31536000),
    rate_tokens     double precision,  -- the bucket; NULL: full
    rate_at         timestamptz,       -- when rate_tokens was last computed
    key_rate_n       integer CHECK (key_rate_n >= 1),  -- per concurrency_key: flow_key_rates
    key_rate_seconds double precision
                     CHECK (key_rate_seconds > 0 AND key_rate_seconds <= 31536000),
    paused          boolean NOT NULL DEFAULT false,
    max_depth       bigint CHECK (max_depth >= 0),
    key_cursor      text,              -- the key the round robin served last
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((rate_n IS NULL) = (rate_seconds IS NULL)),
    CHECK ((key_rate_n IS NULL) = (key_rate_seconds IS NULL)),
    gated           boolean GENERATED ALWAYS AS (
        concurrency IS NOT NULL OR key_concurrency IS NOT NULL OR rate_n IS NOT NULL
        OR key_rate_n IS NOT NULL OR paused
    ) STORED
);

-- The token bucket of each concurrency_key of a kind with key_rate_n (at most key_rate_n starts
-- per key_rate_seconds per key). No row: a full bucket. claim_gated reads and writes a kind's
-- rows only under that kind's flow_limits row lock, as it does the kind's own bucket, so the
-- rate holds across workers by construction. A row whose last write is a period old is a full
-- bucket again (tokens never go below 0): claim_gated deletes a bounded number of those per
-- claim (oldest first, flow_key_rates_stale), so the table holds about the keys started in the
-- last period. A change of key_rate_limit deletes the kind's rows (every bucket full).
CREATE TABLE /*schema*/.flow_key_rates (
    kind            text NOT NULL REFERENCES /*schema*/.flow_limits (kind) ON DELETE CASCADE,
    concurrency_key text NOT NULL,
    tokens          double precision NOT NULL,
    tokens_at       timestamptz NOT NULL,  -- when tokens was computed
    PRIMARY KEY (kind, concurrency_key)
);
CREATE INDEX flow_key_rates_stale ON /*schema*/.flow_key_rates (kind, tokens_at);

CREATE TABLE /*schema*/.flow_paused_queues (
    queue_name text PRIMARY KEY CHECK (octet_length(queue_name) BETWEEN 1 AND 128),
    paused_at  timestamptz NOT NULL DEFAULT now()
);

-- set_limits(kind, settings): the keys present in settings are set, JSON null clears one;
-- absent keys are kept. Keys: concurrency, key_concurrency, rate_limit ([n, seconds] or null),
-- key_rate_limit (the same, per concurrency_key), paused (boolean), max_depth. Returns the row
-- as JSON. Bad values raise 22023.
CREATE FUNCTION /*schema*/.set_limits(kind text, settings jsonb)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_bad text;
    v_row jsonb;
BEGIN
    IF settings IS NULL OR jsonb_typeof(settings) <> 'object' THEN
        RAISE EXCEPTION 'aioqueue: limits must be a JSON object' USING ERRCODE = '22023';
    END IF;
    SELECT min(k) INTO v_bad FROM jsonb_object_keys(settings) AS k
    WHERE k NOT IN ('concurrency', 'key_concurrency', 'rate_limit', 'key_rate_limit', 'paused',
                    'max_depth');
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'aioqueue: unknown limit %', v_bad USING ERRCODE = '22023';
    END IF;
    IF kind IS NULL OR octet_length(kind) NOT BETWEEN 1 AND 128 THEN
        RAISE EXCEPTION 'aioqueue: kind must be 1-128 bytes' USING ERRCODE = '22023';
    END IF;
    IF jsonb_typeof(settings -> 'rate_limit') NOT IN ('null', 'array')
       OR (jsonb_typeof(settings -> 'rate_limit') = 'array'
           AND jsonb_array_length(settings -> 'rate_limit') <> 2) THEN
        RAISE EXCEPTION 'aioqueue: rate_limit must be [starts, seconds] or null'
            USING ERRCODE = '22023';
    END IF;
    IF jsonb_typeof(settings -> 'key_rate_limit') NOT IN ('null', 'array')
       OR (jsonb_typeof(settings -> 'key_rate_limit') = 'array'
           AND jsonb_array_length(settings -> 'key_rate_limit') <> 2) THEN
        RAISE EXCEPTION 'aioqueue: key_rate_limit must be [starts, seconds] or null'
            USING ERRCODE = '22023';
    END IF;
    BEGIN
        INSERT INTO /*schema*/.flow_limits AS f (kind) VALUES (set_limits.kind)
        ON CONFLICT DO NOTHING;
        UPDATE /*schema*/.flow_limits AS f SET
            concurrency = CASE WHEN settings ? 'concurrency'
                               THEN (settings ->> 'concurrency')::integer ELSE f.concurrency END,
            key_concurrency = CASE WHEN settings ? 'key_concurrency'
                                   THEN (settings ->> 'key_concurrency')::integer
                                   ELSE f.key_concurrency END,
            rate_n = CASE WHEN settings ? 'rate_limit'
                          THEN (settings -> 'rate_limit' ->> 0)::integer ELSE f.rate_n END,
            rate_seconds = CASE WHEN settings ? 'rate_limit'
                                THEN (settings -> 'rate_limit' ->> 1)::double precision
                                ELSE f.rate_seconds END,
            rate_tokens = CASE WHEN settings ? 'rate_limit' THEN NULL ELSE f.rate_tokens END,
            key_rate_n = CASE WHEN settings ? 'key_rate_limit'
                              THEN (settings -> 'key_rate_limit' ->> 0)::integer
                              ELSE f.key_rate_n END,
            key_rate_seconds = CASE WHEN settings ? 'key_rate_limit'
                                    THEN (settings -> 'key_rate_limit' ->> 1)::double precision
                                    ELSE f.key_rate_seconds END,
            paused = CASE WHEN settings ? 'paused'
                          THEN coalesce((settings ->> 'paused')::boolean, false) ELSE f.paused END,
            max_depth = CASE WHEN settings ? 'max_depth'
                             THEN (settings ->> 'max_depth')::bigint ELSE f.max_depth END,
            updated_at = now()
        WHERE f.kind = set_limits.kind
        RETURNING to_jsonb(f) - 'rate_tokens' - 'rate_at' - 'key_cursor' INTO v_row;
    EXCEPTION WHEN check_violation OR invalid_text_representation
                   OR numeric_value_out_of_range THEN
        RAISE EXCEPTION 'aioqueue: bad limit for %: %', kind, SQLERRM USING ERRCODE = '22023';
    END;
    IF settings ? 'key_rate_limit' THEN  -- under the row lock the UPDATE took: every bucket full
        DELETE FROM /*schema*/.flow_key_rates AS b WHERE b.kind = set_limits.kind;
    END IF;
    PERFORM pg_notify(/*channel*/, '');  -- a raised limit or a resume: workers claim again
    RETURN v_row;
END;
$fn$;

CREATE FUNCTION /*schema*/.pause_queue(queue_name text) RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    INSERT INTO /*schema*/.flow_paused_queues (queue_name) VALUES (pause_queue.queue_name)
    ON CONFLICT DO NOTHING;
END;

CREATE FUNCTION /*schema*/.resume_queue(queue_name text) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    DELETE FROM /*schema*/.flow_paused_queues AS p WHERE p.queue_name = resume_queue.queue_name;
    PERFORM pg_notify(/*channel*/, '');
END;
$fn$;

-- claim_gated: job_claim.sql's claim for the gated kinds among p_kinds (same parameters, same
-- columns). Per kind, in kind order: room = batch left, capped by concurrency - running and by
-- the rate tokens; with key_concurrency or key_rate_n, keys are served round robin from the key
-- after the one served last (one index probe per key, at most 2 * room + 32 probes per kind per
-- claim), each key up to key_concurrency - its running jobs and up to its bucket's whole tokens
-- (a key with none is skipped: the next key is served); then unkeyed jobs among the kind's first
-- room + 64 due jobs (not limited per key). jit off: issue 18 (a pooler may not keep it off).
CREATE FUNCTION /*schema*/.claim_gated(
    p_kinds text[], p_default_max_attempts integer[], p_forbidden text[], p_batch integer,
    p_worker text, p_lease double precision, p_now timestamptz)
RETURNS TABLE (id bigint, kind text, payload text, attempts integer, max_attempts integer,
               lease_token bigint, priority smallint, run_at_us bigint, queue_name text,
               flags text[], unique_key text, created_at_us bigint, meta text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $fn$
#variable_conflict use_column
DECLARE
    v_now     timestamptz := coalesce(p_now, now());
    v_clock   timestamptz := clock_timestamp();
    v_token   bigint := (pg_current_xact_id()::text::bigint & 4294967295)
                        | (floor(random() * 2147483648)::bigint << 32);
    r         record;
    v_left    integer := p_batch;
    v_room    integer;
    v_running integer;
    v_tokens  double precision;
    v_ids     bigint[] := '{}';
    v_got     bigint[];
    v_kind_n  integer;
    v_rkeys   text[];
    v_rcounts bigint[];
    v_start   text;
    v_key     text;
    v_keys    text[];
    v_from    text;
    v_upto    text;
    v_pass    integer;
    v_last    bigint;
    v_probes  integer;
    v_ktokens double precision[];  -- per probed key (v_keys order): its bucket now
    v_gotords bigint[];            -- per claimed job: its key's place in v_keys
BEGIN
    IF p_batch IS NULL OR p_batch <= 0 OR p_kinds IS NULL THEN
        RETURN;
    END IF;
    -- 1. The lock, alone in its statement: every later statement sees all claims before it.
    PERFORM 1 FROM /*schema*/.flow_limits AS f
    WHERE f.kind = ANY (p_kinds) AND f.gated
    ORDER BY f.kind
    FOR NO KEY UPDATE;

    FOR r IN SELECT * FROM /*schema*/.flow_limits AS f
             WHERE f.kind = ANY (p_kinds) AND f.gated AND NOT f.paused
             ORDER BY f.kind LOOP
        EXIT WHEN v_left <= 0;
        v_room := v_left;
        IF r.concurrency IS NOT NULL THEN
            SELECT count(*) INTO v_running FROM /*schema*/.jobs AS j
            WHERE j.state = 'running' AND j.kind = r.kind;
            v_room := least(v_room, r.concurrency - v_running);
        END IF;
        IF r.rate_n IS NOT NULL THEN
            v_tokens := least(r.rate_n::double precision,
                              coalesce(r.rate_tokens, r.rate_n)
                              + greatest(0, extract(epoch FROM v_clock - coalesce(r.rate_at, v_clock)))
                                * r.rate_n / r.rate_seconds);
            v_room := least(v_room, floor(v_tokens)::integer);
        END IF;
        IF r.key_rate_n IS NOT NULL THEN  -- buckets full again: a bounded prune, oldest first
            DELETE FROM /*schema*/.flow_key_rates AS b
            WHERE b.kind = r.kind AND b.concurrency_key = ANY (ARRAY(
                SELECT o.concurrency_key FROM /*schema*/.flow_key_rates AS o
                WHERE o.kind = r.kind
                  AND o.tokens_at <= v_clock - make_interval(secs => r.key_rate_seconds)
                ORDER BY o.kind, o.tokens_at
                LIMIT greatest(v_room, 0) + 64));
        END IF;
        CONTINUE WHEN v_room <= 0;  -- the bucket is path-independent: nothing to write
        v_kind_n := 0;
        IF r.key_concurrency IS NULL AND r.key_rate_n IS NULL THEN
            v_got := ARRAY(
                SELECT j.id FROM /*schema*/.jobs AS j
                WHERE j.kind = r.kind
                  AND j.state IN ('pending', 'scheduled')
                  AND j.run_at <= v_now
                  AND NOT (j.flags && p_forbidden)
                  AND (j.queue_name IS NULL OR (
                        NOT EXISTS (SELECT 1 FROM /*schema*/.flow_paused_queues AS q
                                    WHERE q.queue_name = j.queue_name)
                        AND NOT EXISTS (
                            SELECT 1 FROM /*schema*/.jobs AS h
                            WHERE h.queue_name = j.queue_name
                              AND h.state IN ('pending', 'scheduled', 'running')
                              AND h.id < j.id)))
                ORDER BY j.priority DESC, j.run_at, j.id
                LIMIT v_room
                FOR UPDATE OF j SKIP LOCKED);
            v_ids := v_ids || v_got;
            v_kind_n := cardinality(v_got);
        ELSE
            SELECT array_agg(c.k), array_agg(c.n) INTO v_rkeys, v_rcounts
            FROM (SELECT j.concurrency_key AS k, count(*) AS n FROM /*schema*/.jobs AS j
                  WHERE j.state = 'running' AND j.kind = r.kind AND j.concurrency_key IS NOT NULL
                  GROUP BY j.concurrency_key) AS c;
            -- The keys with waiting jobs after the cursor (a loose index scan: one probe
            -- per key, at most 2 * room + 32), then those from the start up to the cursor.
            v_start := coalesce(r.key_cursor, '');
            v_keys := '{}';
            v_probes := 2 * v_room + 32;
            FOR v_pass IN 1 .. 2 LOOP
                EXIT WHEN cardinality(v_keys) >= v_probes OR (v_pass = 2 AND v_start = '');
                v_from := CASE WHEN v_pass = 1 THEN v_start ELSE '' END;
                v_upto := CASE WHEN v_pass = 1 THEN NULL ELSE v_start END;
                v_keys := v_keys || ARRAY(
                    WITH RECURSIVE walk(k, n) AS (
                        SELECT (SELECT j.concurrency_key FROM /*schema*/.jobs AS j
                                WHERE j.kind = r.kind AND j.concurrency_key > v_from
                                  AND j.concurrency_key IS NOT NULL
                                  AND j.state IN ('pending', 'scheduled')
                                ORDER BY j.kind, j.concurrency_key
                                LIMIT 1), 1
                        UNION ALL
                        SELECT (SELECT j.concurrency_key FROM /*schema*/.jobs AS j
                                WHERE j.kind = r.kind AND j.concurrency_key > w.k
                                  AND j.concurrency_key IS NOT NULL
                                  AND j.state IN ('pending', 'scheduled')
                                ORDER BY j.kind, j.concurrency_key
                                LIMIT 1), w.n + 1
                        FROM walk AS w
                        WHERE w.k IS NOT NULL AND w.n < v_probes - cardinality(v_keys)
                          AND (v_upto IS NULL OR w.k < v_upto)
                    )
                    SELECT w.k FROM walk AS w
                    WHERE w.k IS NOT NULL AND (v_upto IS NULL OR w.k <= v_upto)
                    ORDER BY w.n);
            END LOOP;
            IF cardinality(v_keys) > 0 THEN
                v_ktokens := '{}';
                IF r.key_rate_n IS NOT NULL THEN  -- each key's bucket now (no row: full)
                    v_ktokens := ARRAY(  -- a primary-key probe per key (not a join: no scan)
                        SELECT coalesce(
                            (SELECT least(r.key_rate_n::double precision,
                                          b.tokens + greatest(0, extract(epoch FROM
                                                                 v_clock - b.tokens_at))
                                                     * r.key_rate_n / r.key_rate_seconds)
                             FROM /*schema*/.flow_key_rates AS b
                             WHERE b.kind = r.kind AND b.concurrency_key = k.key),
                            r.key_rate_n)
                        FROM unnest(v_keys) WITH ORDINALITY AS k(key, ord)
                        ORDER BY k.ord);
                END IF;
                -- Each key in turn, up to its free slots and its tokens, until the room is
                -- used: one statement.
                SELECT coalesce(array_agg(x.id), '{}'), coalesce(array_agg(x.ord), '{}'),
                       max(x.ord)
                INTO v_got, v_gotords, v_last
                FROM (
                    SELECT c.id, k.ord
                    FROM unnest(v_keys) WITH ORDINALITY AS k(key, ord)
                    CROSS JOIN LATERAL (
                        SELECT j.id FROM /*schema*/.jobs AS j
                        WHERE j.kind = r.kind AND j.concurrency_key = k.key
                          AND j.state IN ('pending', 'scheduled')
                          AND j.run_at <= v_now
                          AND NOT (j.flags && p_forbidden)
                          AND (j.queue_name IS NULL OR (
                                NOT EXISTS (SELECT 1 FROM /*schema*/.flow_paused_queues AS q
                                            WHERE q.queue_name = j.queue_name)
                                AND NOT EXISTS (
                                    SELECT 1 FROM /*schema*/.jobs AS h
                                    WHERE h.queue_name = j.queue_name
                                      AND h.state IN ('pending', 'scheduled', 'running')
                                      AND h.id < j.id)))
                        ORDER BY j.priority DESC, j.run_at, j.id
                        LIMIT greatest(0, least(
                            coalesce(r.key_concurrency
                                     - coalesce(v_rcounts[array_position(v_rkeys, k.key)], 0),
                                     2147483647),
                            coalesce(floor(v_ktokens[k.ord])::integer, 2147483647)))
                        FOR UPDATE OF j SKIP LOCKED
                    ) AS c
                    LIMIT v_room
                ) AS x;
                v_ids := v_ids || v_got;
                v_kind_n := cardinality(v_got);
                -- the next claim starts after the last key served (or probed, if none had room)
                v_key := v_keys[CASE WHEN v_kind_n < v_room OR v_last IS NULL
                                     THEN cardinality(v_keys) ELSE v_last END];
                UPDATE /*schema*/.flow_limits AS f SET key_cursor = v_key
                WHERE f.kind = r.kind AND f.key_cursor IS DISTINCT FROM v_key;
                IF r.key_rate_n IS NOT NULL AND v_kind_n > 0 THEN  -- the served keys' buckets
                    INSERT INTO /*schema*/.flow_key_rates AS b
                        (kind, concurrency_key, tokens, tokens_at)
                    SELECT r.kind, v_keys[t.o], v_ktokens[t.o] - t.n, v_clock
                    FROM (SELECT g.o, count(*) AS n FROM unnest(v_gotords) AS g(o)
                          GROUP BY g.o) AS t
                    ON CONFLICT (kind, concurrency_key)
                    DO UPDATE SET tokens = excluded.tokens, tokens_at = excluded.tokens_at;
                END IF;
            END IF;
            IF v_room > v_kind_n THEN  -- unkeyed jobs of the kind: not limited per key
                v_got := ARRAY(
                    SELECT j.id FROM /*schema*/.jobs AS j
                    WHERE j.id = ANY (ARRAY(
                            SELECT w.id FROM (
                                SELECT u.id, u.concurrency_key FROM /*schema*/.jobs AS u
                                WHERE u.kind = r.kind
                                  AND u.state IN ('pending', 'scheduled')
                                  AND u.run_at <= v_now
                                ORDER BY u.priority DESC, u.run_at, u.id
                                LIMIT v_room + 64) AS w
                            WHERE w.concurrency_key IS NULL))
                      AND j.state IN ('pending', 'scheduled')
                      AND j.concurrency_key IS NULL
                      AND NOT (j.flags && p_forbidden)
                      AND (j.queue_name IS NULL OR (
                            NOT EXISTS (SELECT 1 FROM /*schema*/.flow_paused_queues AS q
                                        WHERE q.queue_name = j.queue_name)
                            AND NOT EXISTS (
                                SELECT 1 FROM /*schema*/.jobs AS h
                                WHERE h.queue_name = j.queue_name
                                  AND h.state IN ('pending', 'scheduled', 'running')
                                  AND h.id < j.id)))
                    ORDER BY j.priority DESC, j.run_at, j.id
                    LIMIT v_room - v_kind_n
                    FOR UPDATE OF j SKIP LOCKED);
                v_ids := v_ids || v_got;
                v_kind_n := v_kind_n + cardinality(v_got);
            END IF;
        END IF;
        IF r.rate_n IS NOT NULL THEN
            UPDATE /*schema*/.flow_limits AS f
            SET rate_tokens = v_tokens - v_kind_n, rate_at = v_clock
            WHERE f.kind = r.kind;
        END IF;
        v_left := v_left - v_kind_n;
    END LOOP;

    IF cardinality(v_ids) = 0 THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH claimed AS (
        UPDATE /*schema*/.jobs AS j
        SET state = 'running',
            attempts = least(j.attempts, 2147483646) + 1,
            max_attempts = coalesce(
                j.max_attempts, p_default_max_attempts[array_position(p_kinds, j.kind)], 25),
            lease_token = v_token,
            locked_by = p_worker,
            lease_expires_at = v_now + make_interval(secs => p_lease),
            started_at = v_now
        WHERE j.id = ANY (v_ids)
        RETURNING j.id, j.kind, j.payload::text AS payload, j.attempts, j.max_attempts,
                  j.lease_token, j.priority,
                  CASE WHEN j.run_at >= '0001-01-01 00:00:00+00'
                            AND j.run_at < '10000-01-01 00:00:00+00'
                       THEN (extract(epoch FROM j.run_at) * 1000000)::bigint END AS run_at_us,
                  j.queue_name, nullif(j.flags, '{}') AS flags, j.unique_key,
                  CASE WHEN j.created_at >= '0001-01-01 00:00:00+00'
                            AND j.created_at < '10000-01-01 00:00:00+00'
                       THEN (extract(epoch FROM j.created_at) * 1000000)::bigint END
                      AS created_at_us,
                  j.meta::text AS meta
    )
    -- casts: several columns are domains (0006, 0008); the declared result is their base type
    SELECT c.id::bigint, c.kind::text, c.payload::text, c.attempts::integer,
           c.max_attempts::integer, c.lease_token::bigint, c.priority::smallint,
           c.run_at_us::bigint, c.queue_name::text, c.flags::text[], c.unique_key::text,
           c.created_at_us::bigint, c.meta
    FROM claimed AS c
    ORDER BY c.priority DESC, c.run_at_us, c.id;
END;
$fn$;

-- add_jobs learns concurrency_key (for the SQL API, aioqueue.sync and Queue.enqueue with a
-- unique_key). add_jobs as 0009 left it is copied, unchanged, as add_jobs_without_keys (its definition
-- read back from the catalog; only its name and its parameters' qualifier change), and
-- add_jobs(jsonb) becomes a wrapper: it calls the copy, then sets the key of the jobs written
-- (or replaced while still waiting) in a later statement of the same transaction, so no worker
-- ever sees a keyed job without its key. Specs without a key cost one scan of the specs more.
DO $do$
DECLARE
    v_def text := pg_catalog.pg_get_functiondef(
        '/*schema*/.add_jobs(jsonb, timestamptz)'::pg_catalog.regprocedure);
BEGIN
    v_def := pg_catalog.replace(v_def, '.add_jobs(specs jsonb', '.add_jobs_without_keys(specs jsonb');
    v_def := pg_catalog.replace(v_def, 'add_jobs.now', 'add_jobs_without_keys.now');
    v_def := pg_catalog.replace(v_def, 'add_jobs.specs', 'add_jobs_without_keys.specs');
    EXECUTE v_def;
END;
$do$;

CREATE OR REPLACE FUNCTION /*schema*/.add_jobs(specs jsonb, now timestamptz DEFAULT NULL)
RETURNS TABLE (ord integer, id bigint, deduped boolean)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_bad   integer;
    v_keyed boolean := false;
    v_ords  integer[];
    v_ids   bigint[];
    v_dd    boolean[];
BEGIN
    IF jsonb_typeof(specs) = 'array' THEN
        SELECT min(s.ordinality) FILTER (
                   WHERE jsonb_typeof(s.value -> 'concurrency_key') <> 'string'
                      OR octet_length(s.value ->> 'concurrency_key') NOT BETWEEN 1 AND 256) - 1,
               count(*) > 0
        INTO v_bad, v_keyed
        FROM jsonb_array_elements(specs) WITH ORDINALITY AS s
        WHERE jsonb_typeof(s.value) = 'object'
          AND jsonb_typeof(s.value -> 'concurrency_key') <> 'null';
        IF v_bad IS NOT NULL THEN
            RAISE EXCEPTION 'aioqueue: spec %: concurrency_key must be a string of 1-256 bytes',
                v_bad USING ERRCODE = '22023';
        END IF;
    END IF;
    SELECT array_agg(a.ord ORDER BY a.ord), array_agg(a.id ORDER BY a.ord),
           array_agg(a.deduped ORDER BY a.ord)
    INTO v_ords, v_ids, v_dd
    FROM /*schema*/.add_jobs_without_keys(add_jobs.specs, add_jobs.now) AS a;
    IF v_keyed THEN  -- a later statement: it sees the rows just written
        UPDATE /*schema*/.jobs AS j
        SET concurrency_key = s.value ->> 'concurrency_key'
        FROM unnest(v_ords, v_ids, v_dd) AS r(o, i, d)
        JOIN jsonb_array_elements(add_jobs.specs) WITH ORDINALITY AS s ON s.ordinality = r.o
        WHERE j.id = r.i
          AND (s.value ->> 'concurrency_key') IS NOT NULL
          AND j.state IN ('pending', 'scheduled')
          AND (NOT r.d
               OR coalesce(s.value ->> 'on_conflict', 'ignore')
                  IN ('replace', 'preserve_run_at', 'supersede'));
    END IF;
    RETURN QUERY
    SELECT r.o, r.i, r.d FROM unnest(v_ords, v_ids, v_dd) AS r(o, i, d) ORDER BY r.o;
END;
$fn$;

-- Privileges: as for add_jobs (0001), nothing for PUBLIC. Roles that can already claim (UPDATE
-- on jobs, e.g. examples/sql_least_privilege.sql's aq_worker) get what a worker needs here, so
-- an upgrade does not stop them: the flow tables (a worker writes its tasks' declared limits,
-- and a claim locks and updates its kind's row and its keys' buckets) and the new functions.
REVOKE ALL ON FUNCTION /*schema*/.set_limits(text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION /*schema*/.pause_queue(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION /*schema*/.resume_queue(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION /*schema*/.claim_gated(text[], integer[], text[], integer, text,
    double precision, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION /*schema*/.add_jobs_without_keys(jsonb, timestamptz) FROM PUBLIC;

DO $do$
DECLARE
    v_role name;
BEGIN
    FOR v_role IN
        SELECT r.rolname FROM pg_catalog.pg_roles AS r
        WHERE r.rolname <> current_user AND NOT r.rolsuper
          AND pg_catalog.has_table_privilege(r.oid, '/*schema*/.jobs', 'UPDATE')
    LOOP
        EXECUTE pg_catalog.format(
            'GRANT SELECT, INSERT, UPDATE ON /*schema*/.flow_limits TO %I', v_role);
        EXECUTE pg_catalog.format(
            'GRANT SELECT ON /*schema*/.flow_paused_queues TO %I', v_role);
        EXECUTE pg_catalog.format(
            'GRANT SELECT, INSERT, UPDATE, DELETE ON /*schema*/.flow_key_rates TO %I', v_role);
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION /*schema*/.claim_gated(text[], '
            'integer[], text[], integer, text, double precision, timestamptz), '
            '/*schema*/.set_limits(text, jsonb), '
            '/*schema*/.add_jobs_without_keys(jsonb, timestamptz) TO %I', v_role);
    END LOOP;
END;
$do$;
