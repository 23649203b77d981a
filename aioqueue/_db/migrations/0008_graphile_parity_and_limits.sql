-- 0008_graphile_parity_and_limits: the limits the Python API checks hold for every SQL writer
-- too, graphile-worker's add_job semantics where aioqueue differed (issue 24), and retries that
-- cannot be duplicated.
--
-- run_at: a domain, job_run_at, limits it to [1970-01-01, 3000-01-01) UTC, so no interface (the
-- Python API, add_job/add_jobs, reschedule, a plain INSERT or UPDATE) can store -infinity,
-- infinity, a BC time or one the worker cannot turn into a date (issue 17). Rows already out of
-- that range are settled first: waiting and running ones fail with an InvalidRunAt error (they
-- could never run: the claim cannot even read them), and every such row's run_at is clamped into
-- the range, so that the check is validated and no later UPDATE of the row trips over it.
-- Changing the column's type rebuilds jobs_claim; writes wait meanwhile (as in 0006).
--
-- jobs.retried_by: on a failed or cancelled job, its latest retry (retry_job): while that one is
-- active, another retry of the job returns it. retry_job locks the job's row, so racing retries
-- take turns (no index: every insert, claim and completion would maintain it).
-- jobs.replaced_by: set on a running job whose key a replace/preserve_run_at/supersede took
-- over; job_finish_many then settles its retry (failed) or give-back (cancelled) for good.
-- Both columns are NULL for other jobs: added without a table rewrite.

UPDATE /*schema*/.jobs AS j
SET state = CASE WHEN j.state IN ('pending', 'scheduled', 'running')
                 THEN 'failed'::/*schema*/.job_state ELSE j.state END,
    error = CASE WHEN j.state IN ('pending', 'scheduled', 'running')
                 THEN pg_catalog.jsonb_build_object(
                     'message', 'run_at ' || j.run_at::text
                                || ' is outside 1970-01-01 .. 3000-01-01 UTC: never run',
                     'type', 'InvalidRunAt', 'traceback', '', 'attempt', j.attempts,
                     'at', pg_catalog.now())
                 ELSE j.error END,
    finished_at = CASE WHEN j.state IN ('pending', 'scheduled', 'running')
                       THEN pg_catalog.now() ELSE j.finished_at END,
    lease_token = NULL,
    locked_by = NULL,
    lease_expires_at = NULL,
    run_at = CASE WHEN j.run_at < '1970-01-01 00:00:00+00'
                  THEN '1970-01-01 00:00:00+00'::timestamptz
                  ELSE '2999-12-31 23:59:59.999999+00'::timestamptz END
WHERE j.run_at < '1970-01-01 00:00:00+00' OR j.run_at >= '3000-01-01 00:00:00+00';

CREATE DOMAIN /*schema*/.job_run_at AS timestamptz;
ALTER TABLE /*schema*/.jobs ALTER COLUMN run_at TYPE /*schema*/.job_run_at;
ALTER DOMAIN /*schema*/.job_run_at
    ADD CONSTRAINT jobs_run_at_range
    CHECK (VALUE >= '1970-01-01 00:00:00+00' AND VALUE < '3000-01-01 00:00:00+00');

ALTER TABLE /*schema*/.jobs
    ADD COLUMN retried_by bigint,
    ADD COLUMN replaced_by bigint;

-- add_jobs: as in 0001, plus the checks of delays and flags, unsafe_dedupe ignoring completed
-- and cancelled jobs, preserve_run_at keeping run_at only while never attempted, a replaced
-- running job never run again.

CREATE OR REPLACE FUNCTION /*schema*/.add_jobs(specs jsonb, now timestamptz DEFAULT NULL)
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
    v_field       text;
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

    -- The limits the Python API checks before SQL (_spec.py), so that SQL callers get them too:
    -- delays are finite seconds in [0, 100 years], run_at and delay are not both given, flags
    -- are an array of 1-128 byte strings. run_at's range is its column's domain (job_run_at).
    SELECT s.ordinality - 1, b.field INTO v_bad, v_field
    FROM pg_catalog.jsonb_array_elements(specs) WITH ORDINALITY AS s
    CROSS JOIN LATERAL (
        SELECT d.field || ' must be a number of seconds from 0 to 3153600000 (100 years)'
        FROM (VALUES ('delay'), ('max_delay')) AS d(field)
        WHERE pg_catalog.jsonb_typeof(s.value -> d.field) <> 'null'
          AND (pg_catalog.jsonb_typeof(s.value -> d.field) <> 'number'
               OR (s.value ->> d.field)::numeric NOT BETWEEN 0 AND 3153600000)
        UNION ALL
        SELECT 'give delay or run_at, not both'
        WHERE pg_catalog.jsonb_typeof(s.value -> 'delay') <> 'null'
          AND pg_catalog.jsonb_typeof(s.value -> 'run_at') <> 'null'
        UNION ALL
        SELECT 'flags must be an array of 1-128 byte strings'
        WHERE pg_catalog.jsonb_typeof(s.value -> 'flags') <> 'null' AND (
            pg_catalog.jsonb_typeof(s.value -> 'flags') <> 'array'
            OR EXISTS (SELECT FROM pg_catalog.jsonb_array_elements(s.value -> 'flags') AS f
                       WHERE pg_catalog.jsonb_typeof(f) <> 'string'
                          OR pg_catalog.octet_length(f #>> '{}') NOT BETWEEN 1 AND 128))
    ) AS b(field)
    ORDER BY s.ordinality
    LIMIT 1;
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'aioqueue: spec %: %', v_bad, v_field USING ERRCODE = '22023';
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
        v_running_id := NULL;

        <<attempt>>
        LOOP
            IF v_mode = 'unsafe_dedupe' THEN
                -- as graphile-worker, which deletes completed (and removed) jobs: a waiting,
                -- running or failed job with the key counts; completed and cancelled ones do not
                SELECT j.id INTO v_id FROM /*schema*/.jobs AS j
                WHERE j.kind = v_spec.spec ->> 'kind'
                  AND j.unique_key = v_spec.spec ->> 'unique_key'
                  AND j.state IN ('pending', 'scheduled', 'running', 'failed')
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
                -- preserve_run_at keeps run_at only while the job was never attempted: a retry
                -- waiting after a failure takes the new run_at (as graphile-worker)
                run_at = CASE
                    WHEN v_mode = 'preserve_run_at' AND j.attempts = 0 THEN j.run_at
                    WHEN v_max_delay IS NOT NULL THEN LEAST(
                        excluded.run_at,
                        j.created_at + pg_catalog.make_interval(secs => v_max_delay))
                    ELSE excluded.run_at END,
                state = CASE
                    WHEN v_mode = 'preserve_run_at' AND j.attempts = 0 THEN j.state
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
            -- Its current attempt may finish, but it is never run again (graphile sets attempts
            -- to max_attempts): max_attempts drops to the attempts made, and replaced_by (set
            -- below) makes job_finish_many settle a retry or a give-back for good.
            UPDATE /*schema*/.jobs AS j
            SET unique_key = NULL,
                max_attempts = GREATEST(j.attempts, 1),
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
        IF v_running_id IS NOT NULL THEN
            UPDATE /*schema*/.jobs AS j SET replaced_by = v_id WHERE j.id = v_running_id;
        END IF;

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

-- add_job taking json (graphile-worker's type: json_build_object, row_to_json, to_json) or text
-- (a string literal): PostgreSQL does not cast json to jsonb in a function call. payload has no
-- default here, so a call without one still has a single candidate (the jsonb add_job), and a
-- string literal picks the text form (PostgreSQL prefers the string category for unknown).
CREATE FUNCTION /*schema*/.add_job(
    kind text,
    payload json,
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
    SELECT /*schema*/.add_job(add_job.kind, add_job.payload::jsonb, add_job.queue_name,
        add_job.run_at, add_job.max_attempts, add_job.unique_key, add_job.priority,
        add_job.flags, add_job.on_conflict, add_job.delay, add_job.max_delay);
$fn$;

CREATE FUNCTION /*schema*/.add_job(
    kind text,
    payload text,
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
    SELECT /*schema*/.add_job(add_job.kind, add_job.payload::jsonb, add_job.queue_name,
        add_job.run_at, add_job.max_attempts, add_job.unique_key, add_job.priority,
        add_job.flags, add_job.on_conflict, add_job.delay, add_job.max_delay);
$fn$;

-- add_jobs taking json (json_build_array, json_agg) or text, for the same reason.
CREATE FUNCTION /*schema*/.add_jobs(specs json, now timestamptz DEFAULT NULL)
RETURNS TABLE (ord integer, id bigint, deduped boolean)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT r.ord, r.id, r.deduped
    FROM /*schema*/.add_jobs(add_jobs.specs::jsonb, add_jobs.now) AS r;
$fn$;

CREATE FUNCTION /*schema*/.add_jobs(specs text, now timestamptz DEFAULT NULL)
RETURNS TABLE (ord integer, id bigint, deduped boolean)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT r.ord, r.id, r.deduped
    FROM /*schema*/.add_jobs(add_jobs.specs::jsonb, add_jobs.now) AS r;
$fn$;

-- retry_job: re-run a failed or cancelled job as a new pending job (rescheduled_from: the job).
-- Idempotent: while the job's latest retry (retried_by) is active, that one is returned
-- (deduped), as is an active job holding the same unique_key (add_jobs' dedupe). The job's row
-- is locked first, so two racing retries take turns and the second sees the first's retry
-- (READ COMMITTED re-reads the locked row; a REPEATABLE READ caller gets a serialization
-- failure instead of a duplicate). No row: the job is not failed/cancelled (or does not exist).
CREATE FUNCTION /*schema*/.retry_job(job_id bigint)
RETURNS TABLE (id bigint, deduped boolean)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_spec    jsonb;
    v_last    bigint;
    v_id      bigint;
    v_deduped boolean;
BEGIN
    SELECT j.retried_by,
           pg_catalog.jsonb_build_object(
               'kind', j.kind,
               'payload', j.payload,
               'priority', j.priority,
               'max_attempts', j.max_attempts,
               'queue_name', j.queue_name,
               'flags', pg_catalog.to_jsonb(j.flags),
               'unique_key', j.unique_key,
               'rescheduled_from', j.id)
    INTO v_last, v_spec
    FROM /*schema*/.jobs AS j
    WHERE j.id = retry_job.job_id AND j.state IN ('failed', 'cancelled')
    FOR UPDATE;
    IF v_spec IS NULL THEN
        RETURN;
    END IF;
    IF v_last IS NOT NULL THEN
        SELECT j.id INTO v_id FROM /*schema*/.jobs AS j
        WHERE j.id = v_last AND j.state IN ('pending', 'scheduled', 'running');
        IF v_id IS NOT NULL THEN
            RETURN QUERY SELECT v_id, true;
            RETURN;
        END IF;
    END IF;
    SELECT r.id, r.deduped INTO v_id, v_deduped
    FROM /*schema*/.add_jobs(pg_catalog.jsonb_build_array(v_spec)) AS r;
    UPDATE /*schema*/.jobs AS j SET retried_by = v_id WHERE j.id = retry_job.job_id;
    RETURN QUERY SELECT v_id, v_deduped;
END;
$fn$;

REVOKE ALL ON FUNCTION /*schema*/.add_job(text, json, text, timestamptz, integer, text, integer,
    text[], text, double precision, double precision) FROM PUBLIC;
REVOKE ALL ON FUNCTION /*schema*/.add_job(text, text, text, timestamptz, integer, text, integer,
    text[], text, double precision, double precision) FROM PUBLIC;
REVOKE ALL ON FUNCTION /*schema*/.add_jobs(json, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION /*schema*/.add_jobs(text, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION /*schema*/.retry_job(bigint) FROM PUBLIC;
