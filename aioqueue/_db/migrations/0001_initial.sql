-- 0001_initial: the jobs table, its indexes, and the SQL enqueue API (add_job / add_jobs).
-- Markers: /*schema*/ is replaced by the validated, quoted schema name; /*channel*/ by the
-- notification channel literal. Nothing else is ever substituted into SQL.

CREATE TYPE /*schema*/.job_state AS ENUM (
    'pending', 'scheduled', 'running', 'completed', 'cancelled', 'failed'
);

CREATE TABLE /*schema*/.jobs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             text NOT NULL,
    payload          jsonb NOT NULL DEFAULT '{}'::jsonb,
    state            /*schema*/.job_state NOT NULL DEFAULT 'pending',
    priority         smallint NOT NULL DEFAULT 0,
    run_at           timestamptz NOT NULL DEFAULT now(),
    attempts         integer NOT NULL DEFAULT 0,
    max_attempts     integer,  -- NULL: the task's default, filled in at the first claim
    unique_key       text,
    queue_name       text,
    flags            text[] NOT NULL DEFAULT '{}',
    result           jsonb,
    error            jsonb,
    -- lease columns: lease_expires_at is deliberately NOT indexed so heartbeats stay HOT
    lease_token      bigint,  -- the claiming transaction's id: unique per claim
    locked_by        text,
    lease_expires_at timestamptz,
    cancel_requested boolean NOT NULL DEFAULT false,
    rescheduled_from bigint,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    CONSTRAINT jobs_kind_length CHECK (octet_length(kind) BETWEEN 1 AND 128),
    CONSTRAINT jobs_queue_name_length CHECK (octet_length(queue_name) BETWEEN 1 AND 128),
    CONSTRAINT jobs_unique_key_length CHECK (octet_length(unique_key) BETWEEN 1 AND 512),
    CONSTRAINT jobs_flags_count CHECK (cardinality(flags) <= 32),
    CONSTRAINT jobs_max_attempts_positive CHECK (max_attempts >= 1),
    CONSTRAINT jobs_attempts_non_negative CHECK (attempts >= 0)
) WITH (fillfactor = 70);

-- Dedupe: per kind, active jobs only (seed 003). Rows without a key (NULLs never conflict)
-- stay out of the index, so claims and completions of unkeyed jobs do not maintain it.
CREATE UNIQUE INDEX jobs_unique_active
    ON /*schema*/.jobs (kind, unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('pending', 'scheduled', 'running');

-- unsafe_dedupe looks a key up in every state still kept.
CREATE INDEX jobs_unique_key_any
    ON /*schema*/.jobs (kind, unique_key)
    WHERE unique_key IS NOT NULL;

-- The claim walks this index in claim order and stops after one batch.
CREATE INDEX jobs_claim
    ON /*schema*/.jobs (priority DESC, run_at, id)
    WHERE state IN ('pending', 'scheduled');

-- Serial queues: the head of a named queue is its lowest active id.
CREATE INDEX jobs_queue_active
    ON /*schema*/.jobs (queue_name, id)
    WHERE queue_name IS NOT NULL AND state IN ('pending', 'scheduled', 'running');

-- Rescue scans running rows only (bounded by total concurrency).
CREATE INDEX jobs_running
    ON /*schema*/.jobs (id)
    WHERE state = 'running';

-- Retention prunes finished rows oldest first.
CREATE INDEX jobs_finished
    ON /*schema*/.jobs (finished_at)
    WHERE state IN ('completed', 'cancelled', 'failed');

-- Lineage lookups (what was created from this job).
CREATE INDEX jobs_rescheduled_from
    ON /*schema*/.jobs (rescheduled_from)
    WHERE rescheduled_from IS NOT NULL;

-- Row-level security on, no policy: only the owner (and SECURITY DEFINER functions) see rows.
ALTER TABLE /*schema*/.jobs ENABLE ROW LEVEL SECURITY;

-- add_jobs: the one implementation of every on_conflict mode.
-- specs: a jsonb array of objects {kind, payload, queue_name, run_at, delay, max_attempts,
-- unique_key, priority, flags, on_conflict, max_delay, rescheduled_from}; missing keys take defaults.
-- Returns one row per spec, in input order: (ord, id, deduped).
-- Sends at most one notification per call, and none while the notification queue is over half full.
CREATE FUNCTION /*schema*/.add_jobs(specs jsonb, now timestamptz DEFAULT NULL)
RETURNS TABLE (ord integer, id bigint, deduped boolean)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_now         timestamptz := coalesce(add_jobs.now, pg_catalog.now());
    v_spec        record;
    v_run_at      timestamptz;
    v_state       /*schema*/.job_state;
    v_flags       text[];
    v_mode        text;
    v_max_delay   double precision;
    v_id          bigint;
    v_deduped     boolean;
    v_running_id  bigint;
    v_cancel_ids  bigint[] := '{}';
    v_wake_now    boolean := false;
    v_wake_at     timestamptz;
    v_bad         integer;
    v_ords        integer[] := '{}';
    v_ids         bigint[] := '{}';
    v_dedupes     boolean[] := '{}';
    v_seq         regclass := pg_catalog.pg_get_serial_sequence('/*schema*/.jobs', 'id');
BEGIN
    IF specs IS NULL OR pg_catalog.jsonb_typeof(specs) <> 'array' THEN
        RAISE EXCEPTION 'aioqueue: specs must be a JSON array of job specs'
            USING ERRCODE = '22023';
    END IF;
    SELECT min(s.ordinality) - 1 INTO v_bad
    FROM pg_catalog.jsonb_array_elements(specs) WITH ORDINALITY AS s
    WHERE pg_catalog.jsonb_typeof(s.value) <> 'object' OR (s.value ->> 'kind') IS NULL;
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'aioqueue: spec % is not a JSON object with a kind', v_bad
            USING ERRCODE = '22023';
    END IF;
    SELECT min(s.ordinality) - 1, min(s.value ->> 'on_conflict') INTO v_bad, v_mode
    FROM pg_catalog.jsonb_array_elements(specs) WITH ORDINALITY AS s
    WHERE coalesce(s.value ->> 'on_conflict', 'ignore')
          NOT IN ('ignore', 'replace', 'preserve_run_at', 'unsafe_dedupe', 'supersede');
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'aioqueue: spec % has unknown on_conflict %', v_bad, v_mode
            USING ERRCODE = '22023';
    END IF;

    -- Specs without a unique_key have no conflict to resolve: one set-based INSERT for all of
    -- them (ids drawn up front so each maps back to its position).
    WITH src AS (
        SELECT s.ordinality::integer AS ord, s.value AS spec,
               pg_catalog.nextval(v_seq) AS id,
               LEAST(
                   coalesce((s.value ->> 'run_at')::timestamptz,
                            v_now + pg_catalog.make_interval(
                                secs => coalesce((s.value ->> 'delay')::double precision, 0))),
                   v_now + pg_catalog.make_interval(
                       secs => (s.value ->> 'max_delay')::double precision)
               ) AS run_at  -- LEAST ignores the NULL of an absent max_delay
        FROM pg_catalog.jsonb_array_elements(specs) WITH ORDINALITY AS s
        WHERE (s.value ->> 'unique_key') IS NULL
    ), ins AS (
        INSERT INTO /*schema*/.jobs AS j
            (id, kind, payload, state, priority, run_at, max_attempts, queue_name, flags,
             rescheduled_from, created_at)
        OVERRIDING SYSTEM VALUE
        SELECT src.id, src.spec ->> 'kind', coalesce(src.spec -> 'payload', '{}'::jsonb),
               CASE WHEN src.run_at > v_now THEN 'scheduled'::/*schema*/.job_state
                    ELSE 'pending'::/*schema*/.job_state END,
               coalesce((src.spec ->> 'priority')::smallint, 0),
               src.run_at,
               (src.spec ->> 'max_attempts')::integer,
               src.spec ->> 'queue_name',
               CASE WHEN pg_catalog.jsonb_typeof(src.spec -> 'flags') = 'array'
                    THEN ARRAY(SELECT pg_catalog.jsonb_array_elements_text(src.spec -> 'flags'))
                    ELSE '{}'::text[] END,
               (src.spec ->> 'rescheduled_from')::bigint,
               v_now
        FROM src
        ORDER BY src.ord
        RETURNING j.id
    )
    SELECT coalesce(pg_catalog.array_agg(src.ord ORDER BY src.ord), '{}'),
           coalesce(pg_catalog.array_agg(src.id ORDER BY src.ord), '{}'),
           coalesce(pg_catalog.array_agg(false ORDER BY src.ord), '{}'),
           coalesce(pg_catalog.bool_or(src.run_at <= v_now), false),
           min(src.run_at) FILTER (WHERE src.run_at > v_now)
    INTO v_ords, v_ids, v_dedupes, v_wake_now, v_wake_at
    FROM src
    WHERE (SELECT count(*) FROM ins) >= 0;  -- reading ins makes the INSERT run first

    FOR v_spec IN
        SELECT s.ordinality::integer AS ord, s.value AS spec
        FROM pg_catalog.jsonb_array_elements(specs) WITH ORDINALITY AS s
        WHERE (s.value ->> 'unique_key') IS NOT NULL
        -- one global lock order for keys: concurrent calls naming the same keys in different
        -- orders would otherwise deadlock; duplicates of one key keep their input order
        ORDER BY (s.value ->> 'kind') COLLATE "C", (s.value ->> 'unique_key') COLLATE "C",
                 s.ordinality
    LOOP
        v_mode := coalesce(v_spec.spec ->> 'on_conflict', 'ignore');
        v_run_at := coalesce(
            (v_spec.spec ->> 'run_at')::timestamptz,
            v_now + pg_catalog.make_interval(
                secs => coalesce((v_spec.spec ->> 'delay')::double precision, 0))
        );
        v_max_delay := (v_spec.spec ->> 'max_delay')::double precision;
        IF v_max_delay IS NOT NULL THEN
            v_run_at := LEAST(v_run_at, v_now + pg_catalog.make_interval(secs => v_max_delay));
        END IF;
        v_state := CASE WHEN v_run_at > v_now THEN 'scheduled' ELSE 'pending' END;
        v_flags := CASE WHEN pg_catalog.jsonb_typeof(v_spec.spec -> 'flags') = 'array'
            THEN ARRAY(SELECT pg_catalog.jsonb_array_elements_text(v_spec.spec -> 'flags'))
            ELSE '{}'::text[] END;
        v_deduped := false;
        v_id := NULL;

        <<attempt>>
        LOOP
            IF v_mode = 'unsafe_dedupe' THEN
                SELECT j.id INTO v_id FROM /*schema*/.jobs AS j
                WHERE j.kind = v_spec.spec ->> 'kind'
                  AND j.unique_key = v_spec.spec ->> 'unique_key'
                ORDER BY j.id DESC LIMIT 1;
                IF v_id IS NOT NULL THEN
                    v_deduped := true;
                    EXIT attempt;
                END IF;
            END IF;

            IF v_mode IN ('ignore', 'unsafe_dedupe') THEN
                INSERT INTO /*schema*/.jobs AS j
                    (kind, payload, state, priority, run_at, max_attempts, queue_name, flags,
                     unique_key, rescheduled_from, created_at)
                VALUES (
                    v_spec.spec ->> 'kind',
                    coalesce(v_spec.spec -> 'payload', '{}'::jsonb),
                    v_state,
                    coalesce((v_spec.spec ->> 'priority')::smallint, 0),
                    v_run_at,
                    (v_spec.spec ->> 'max_attempts')::integer,
                    v_spec.spec ->> 'queue_name',
                    v_flags,
                    v_spec.spec ->> 'unique_key',
                    (v_spec.spec ->> 'rescheduled_from')::bigint,
                    v_now)
                ON CONFLICT (kind, unique_key)
                WHERE unique_key IS NOT NULL AND state IN ('pending', 'scheduled', 'running')
                DO NOTHING
                RETURNING j.id INTO v_id;
                IF v_id IS NOT NULL THEN
                    EXIT attempt;
                END IF;
                -- A conflicting active job exists (or committed while we waited): return it.
                SELECT j.id INTO v_id FROM /*schema*/.jobs AS j
                WHERE j.kind = v_spec.spec ->> 'kind'
                  AND j.unique_key = v_spec.spec ->> 'unique_key'
                  AND j.state IN ('pending', 'scheduled', 'running');
                IF v_id IS NOT NULL THEN
                    v_deduped := true;
                    EXIT attempt;
                END IF;
                CONTINUE attempt;  -- it finished in between: the key is free, try again
            END IF;

            -- replace / preserve_run_at / supersede: update a waiting match in place.
            INSERT INTO /*schema*/.jobs AS j
                (kind, payload, state, priority, run_at, max_attempts, queue_name, flags,
                 unique_key, rescheduled_from, created_at)
            VALUES (
                v_spec.spec ->> 'kind',
                coalesce(v_spec.spec -> 'payload', '{}'::jsonb),
                v_state,
                coalesce((v_spec.spec ->> 'priority')::smallint, 0),
                v_run_at,
                (v_spec.spec ->> 'max_attempts')::integer,
                v_spec.spec ->> 'queue_name',
                v_flags,
                v_spec.spec ->> 'unique_key',
                (v_spec.spec ->> 'rescheduled_from')::bigint,
                v_now)
            ON CONFLICT (kind, unique_key)
                WHERE unique_key IS NOT NULL AND state IN ('pending', 'scheduled', 'running')
            DO UPDATE SET
                payload = CASE
                    WHEN pg_catalog.jsonb_typeof(j.payload) = 'array'
                     AND pg_catalog.jsonb_typeof(excluded.payload) = 'array'
                    THEN j.payload OPERATOR(pg_catalog.||) excluded.payload
                    ELSE excluded.payload END,
                priority = excluded.priority,
                max_attempts = excluded.max_attempts,
                queue_name = excluded.queue_name,
                flags = excluded.flags,
                -- a replaced job starts afresh (graphile resets its retry state too): a waiting
                -- retry must not keep attempts above a lowered max_attempts, nor a stale error
                attempts = 0,
                error = NULL,
                run_at = CASE
                    WHEN v_mode = 'preserve_run_at' THEN j.run_at
                    WHEN v_max_delay IS NOT NULL THEN LEAST(
                        excluded.run_at,
                        j.created_at + pg_catalog.make_interval(secs => v_max_delay))
                    ELSE excluded.run_at END,
                state = CASE
                    WHEN v_mode = 'preserve_run_at' THEN j.state
                    WHEN (CASE WHEN v_max_delay IS NOT NULL THEN LEAST(
                            excluded.run_at,
                            j.created_at + pg_catalog.make_interval(secs => v_max_delay))
                          ELSE excluded.run_at END) > v_now
                    THEN 'scheduled'::/*schema*/.job_state
                    ELSE 'pending'::/*schema*/.job_state END
            WHERE j.state IN ('pending', 'scheduled')
            RETURNING j.id, (j.xmax <> 0) INTO v_id, v_deduped;
            IF v_id IS NOT NULL THEN
                EXIT attempt;
            END IF;
            -- The match is running: release its key (and for supersede ask it to stop), then insert.
            UPDATE /*schema*/.jobs AS j
            SET unique_key = NULL,
                -- replace must not withdraw a cancellation someone else already asked for
                cancel_requested = j.cancel_requested OR v_mode = 'supersede'
            WHERE j.kind = v_spec.spec ->> 'kind'
              AND j.unique_key = v_spec.spec ->> 'unique_key'
              AND j.state = 'running'
            RETURNING j.id INTO v_running_id;
            IF v_running_id IS NOT NULL AND v_mode = 'supersede' THEN
                v_cancel_ids := v_cancel_ids || v_running_id;
            END IF;
            CONTINUE attempt;
        END LOOP attempt;

        IF NOT v_deduped OR v_mode IN ('replace', 'preserve_run_at', 'supersede') THEN
            IF v_state = 'pending' THEN
                v_wake_now := true;
            ELSIF v_wake_at IS NULL OR v_run_at < v_wake_at THEN
                v_wake_at := v_run_at;
            END IF;
        END IF;

        v_ords := v_ords || v_spec.ord;
        v_ids := v_ids || v_id;
        v_dedupes := v_dedupes || v_deduped;
    END LOOP;

    RETURN QUERY
        SELECT r.o, r.i, r.d
        FROM unnest(v_ords, v_ids, v_dedupes) AS r(o, i, d)  -- multi-argument form: FROM only
        ORDER BY r.o;

    -- One notification per call. Payloads are opaque hints: '' (work is due now),
    -- 't:<epoch>' (earliest future run_at), 'c:<ids>' (supersede asks running jobs to stop).
    IF pg_catalog.pg_notification_queue_usage() <= 0.5 THEN
        IF pg_catalog.cardinality(v_cancel_ids) > 0 THEN
            -- at most 300 ids per hint: a payload of 8000 bytes or more fails the whole call
            FOR v_chunk IN 0 .. (pg_catalog.cardinality(v_cancel_ids) - 1) / 300 LOOP
                PERFORM pg_catalog.pg_notify(/*channel*/, 'c:' || pg_catalog.array_to_string(
                    v_cancel_ids[v_chunk * 300 + 1 : v_chunk * 300 + 300], ','));
            END LOOP;
        END IF;
        IF v_wake_now THEN
            PERFORM pg_catalog.pg_notify(/*channel*/, '');
        ELSIF v_wake_at IS NOT NULL THEN
            PERFORM pg_catalog.pg_notify(/*channel*/,
                't:' || EXTRACT(epoch FROM v_wake_at)::text);
        END IF;
    END IF;
END;
$fn$;

-- add_job: named parameters with defaults, for triggers and plain SQL (seed 002).
CREATE FUNCTION /*schema*/.add_job(
    kind text,
    payload jsonb DEFAULT '{}'::jsonb,
    queue_name text DEFAULT NULL,
    run_at timestamptz DEFAULT NULL,
    max_attempts integer DEFAULT NULL,
    unique_key text DEFAULT NULL,
    priority integer DEFAULT 0,
    flags text[] DEFAULT NULL,
    on_conflict text DEFAULT 'ignore',
    delay double precision DEFAULT NULL,
    max_delay double precision DEFAULT NULL
)
RETURNS bigint
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT r.id FROM /*schema*/.add_jobs(pg_catalog.jsonb_build_array(
        pg_catalog.jsonb_build_object(
            'kind', add_job.kind,
            'payload', coalesce(add_job.payload, '{}'::jsonb),
            'queue_name', add_job.queue_name,
            'run_at', add_job.run_at,
            'max_attempts', add_job.max_attempts,
            'unique_key', add_job.unique_key,
            'priority', add_job.priority,
            'flags', pg_catalog.to_jsonb(add_job.flags),
            'on_conflict', add_job.on_conflict,
            'delay', add_job.delay,
            'max_delay', add_job.max_delay))) AS r;
$fn$;

REVOKE ALL ON FUNCTION /*schema*/.add_jobs(jsonb, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION /*schema*/.add_job(text, jsonb, text, timestamptz, integer, text, integer,
    text[], text, double precision, double precision) FROM PUBLIC;
