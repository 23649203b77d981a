-- 0011_history: finished jobs leave the hot table for jobs_history (issue 22, point 3).
--
-- The claim, the completions and the rescuer read and write `jobs`; once a job is completed,
-- failed or cancelled nothing but readers needs it there. Maintenance (the pruner) moves finished
-- rows in small batches into jobs_history, partitioned by state (each state has its own
-- retention) and then by finished_at in ranges of jobs_history_settings.partition_seconds
-- (a day by default). Retention drops whole partitions instead of deleting rows, so `jobs`
-- stays as small as its active jobs plus one maintenance interval of finished ones, and the
-- history costs no dead tuples and no vacuum.
--
-- Online: this migration creates empty tables only (no leaf partitions: maintenance creates
-- them ahead of time) and moves no rows; existing finished rows are moved by maintenance, a
-- batch per statement, like any others.
--
-- Readers (get_job, wait, lineage, family, parent results, list_jobs, stats) read jobs UNION ALL
-- jobs_history in one statement: a move is one statement too (DELETE ... RETURNING feeding an
-- INSERT), so one snapshot sees a job in exactly one of the two tables.
-- Any column added to `jobs` later must be added to jobs_history in the same migration, at
-- the same position (the move copies rows column by column; tests/test_history.py checks).

CREATE TABLE /*schema*/.jobs_history (LIKE /*schema*/.jobs INCLUDING DEFAULTS)
    PARTITION BY LIST (state);
-- No row-level security (unlike jobs): roles reach history through the GRANTs below, as they do
-- the flow tables of 0010; a policy per role would have to be repeated on every new partition.

CREATE TABLE /*schema*/.jobs_history_completed PARTITION OF /*schema*/.jobs_history
    FOR VALUES IN ('completed') PARTITION BY RANGE (finished_at);
CREATE TABLE /*schema*/.jobs_history_failed PARTITION OF /*schema*/.jobs_history
    FOR VALUES IN ('failed') PARTITION BY RANGE (finished_at);
CREATE TABLE /*schema*/.jobs_history_cancelled PARTITION OF /*schema*/.jobs_history
    FOR VALUES IN ('cancelled') PARTITION BY RANGE (finished_at);

-- get_job, wait and the rest look a job up by id: one index probe per leaf partition.
CREATE INDEX jobs_history_id ON /*schema*/.jobs_history (id);
CREATE INDEX jobs_history_finished ON /*schema*/.jobs_history (finished_at);
CREATE INDEX jobs_history_rescheduled_from ON /*schema*/.jobs_history (rescheduled_from)
    WHERE rescheduled_from IS NOT NULL;
CREATE INDEX jobs_history_unique_key ON /*schema*/.jobs_history (kind, unique_key)
    WHERE unique_key IS NOT NULL;
-- jobs with dependency edges: a partition's edges are deleted when it is dropped
CREATE INDEX jobs_history_linked ON /*schema*/.jobs_history (id)
    WHERE has_children OR pending_parents IS NOT NULL;

-- One row. partition_seconds: the width of new leaf partitions (existing ones keep theirs: a
-- new partition always starts where the state's last one ends, so widths never overlap).
CREATE TABLE /*schema*/.jobs_history_settings (
    one               boolean PRIMARY KEY DEFAULT true CHECK (one),
    partition_seconds double precision NOT NULL DEFAULT 86400
        CHECK (partition_seconds >= 60 AND partition_seconds <= 31 * 86400)
);
INSERT INTO /*schema*/.jobs_history_settings DEFAULT VALUES;

-- The leaf partitions, so the mover and retention read bounds without parsing the catalog.
CREATE TABLE /*schema*/.jobs_history_partitions (
    state      /*schema*/.job_state NOT NULL,
    lower      timestamptz NOT NULL,
    upper      timestamptz NOT NULL,
    name       text NOT NULL UNIQUE,
    PRIMARY KEY (state, lower),
    CHECK (lower < upper)
);

-- history_prepare: make sure every finished state has leaf partitions up to now() + ahead (at
-- least two partition widths).
-- A state's first partition reaches back to -infinity (it takes the rows finished before
-- history existed); each next one starts where the last ends. Serialised by the settings row;
-- a short lock_timeout: a long reader of jobs_history delays partition creation (retried at the
-- next pass), never the readers queued behind it. Returns the number of partitions created.
CREATE FUNCTION /*schema*/.history_prepare(
    ahead_seconds double precision, now timestamptz DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '2s'
SET DateStyle = 'ISO, YMD'  -- the bounds are written into the DDL as text
AS $fn$
DECLARE
    v_width   interval;
    v_now     timestamptz := coalesce(history_prepare.now, pg_catalog.now());
    v_until   timestamptz;
    v_state   text;
    v_lower   timestamptz;
    v_upper   timestamptz;
    v_name    text;
    v_made    integer := 0;
BEGIN
    SELECT pg_catalog.make_interval(secs => s.partition_seconds) INTO v_width
    FROM /*schema*/.jobs_history_settings AS s FOR UPDATE;
    -- at least two widths ahead: a partition is there well before its first row
    v_until := v_now + greatest(
        pg_catalog.make_interval(secs => history_prepare.ahead_seconds), 2 * v_width);
    FOREACH v_state IN ARRAY ARRAY['completed', 'failed', 'cancelled'] LOOP
        SELECT max(p.upper) INTO v_lower FROM /*schema*/.jobs_history_partitions AS p
        WHERE p.state = v_state::/*schema*/.job_state;
        WHILE v_lower IS NULL OR v_lower <= v_until LOOP
            IF v_lower IS NULL THEN
                v_upper := pg_catalog.date_bin(v_width, v_now, '2000-01-01 00:00Z');
                v_name := 'jobs_history_' || v_state || '_old';
            ELSE
                -- after a long pause one partition spans the gap (not one per missed width)
                v_upper := greatest(
                    pg_catalog.date_bin(v_width, v_lower, '2000-01-01 00:00Z') + v_width,
                    pg_catalog.date_bin(v_width, v_now, '2000-01-01 00:00Z'));
                v_name := 'jobs_history_' || v_state || '_'
                    || pg_catalog.to_char(v_lower AT TIME ZONE 'UTC', 'YYYYMMDD"t"HH24MISS');
            END IF;
            -- created apart and attached: ATTACH needs a weaker lock on the parent
            EXECUTE pg_catalog.format(
                'CREATE TABLE /*schema*/.%I (LIKE /*schema*/.jobs_history INCLUDING DEFAULTS)',
                v_name);
            EXECUTE pg_catalog.format(
                'ALTER TABLE /*schema*/.%I ATTACH PARTITION /*schema*/.%I '
                'FOR VALUES FROM (%L) TO (%L)',
                'jobs_history_' || v_state, v_name,
                coalesce(v_lower, '-infinity'::timestamptz), v_upper);
            INSERT INTO /*schema*/.jobs_history_partitions (state, lower, upper, name)
            VALUES (v_state::/*schema*/.job_state, coalesce(v_lower, '-infinity'), v_upper,
                    v_name);
            v_lower := v_upper;
            v_made := v_made + 1;
        END LOOP;
    END LOOP;
    RETURN v_made;
END;
$fn$;

-- history_drop_expired: drop the leaf partitions of one state whose every row finished more
-- than retention_seconds ago (the partition's upper bound is past), with their rows' edges.
-- At most max_partitions per call. Returns the number of rows dropped.
CREATE FUNCTION /*schema*/.history_drop_expired(
    state text, retention_seconds double precision, max_partitions integer DEFAULT 10,
    now timestamptz DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '2s'
AS $fn$
DECLARE
    v_part    record;
    v_rows    bigint;
    v_total   bigint := 0;
    v_now     timestamptz := coalesce(history_drop_expired.now, pg_catalog.now());
BEGIN
    PERFORM 1 FROM /*schema*/.jobs_history_settings FOR UPDATE;  -- one maintainer at a time
    FOR v_part IN
        SELECT p.name, p.lower FROM /*schema*/.jobs_history_partitions AS p
        WHERE p.state = history_drop_expired.state::/*schema*/.job_state
          AND p.upper <= v_now
              - pg_catalog.make_interval(secs => history_drop_expired.retention_seconds)
          -- the newest partition stays: the next one starts where it ends
          AND p.upper < (SELECT max(x.upper) FROM /*schema*/.jobs_history_partitions AS x
                         WHERE x.state = p.state)
        ORDER BY p.lower
        LIMIT history_drop_expired.max_partitions
    LOOP
        EXECUTE pg_catalog.format(
            'DELETE FROM /*schema*/.job_deps AS e USING /*schema*/.%I AS h '
            'WHERE (h.has_children OR h.pending_parents IS NOT NULL) '
            'AND (e.parent_id = h.id OR e.child_id = h.id)', v_part.name);
        EXECUTE pg_catalog.format('SELECT count(*) FROM /*schema*/.%I', v_part.name)
            INTO v_rows;
        EXECUTE pg_catalog.format('DROP TABLE /*schema*/.%I', v_part.name);
        DELETE FROM /*schema*/.jobs_history_partitions AS p WHERE p.name = v_part.name;
        v_total := v_total + v_rows;
    END LOOP;
    RETURN v_total;
END;
$fn$;

-- retry_job, as 0008 defined it, finds the job in jobs_history too (its retried_by is set there).
CREATE OR REPLACE FUNCTION /*schema*/.retry_job(job_id bigint)
RETURNS TABLE (id bigint, deduped boolean)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_spec    jsonb;
    v_last    bigint;
    v_id      bigint;
    v_deduped boolean;
    v_moved   boolean := false;
BEGIN
    SELECT j.retried_by,
           pg_catalog.jsonb_build_object(
               'kind', j.kind, 'payload', j.payload, 'priority', j.priority,
               'max_attempts', j.max_attempts, 'queue_name', j.queue_name,
               'flags', pg_catalog.to_jsonb(j.flags), 'unique_key', j.unique_key,
               'rescheduled_from', j.id)
    INTO v_last, v_spec
    FROM /*schema*/.jobs AS j
    WHERE j.id = retry_job.job_id AND j.state IN ('failed', 'cancelled')
    FOR UPDATE;
    IF v_spec IS NULL THEN
        -- a new statement, a new snapshot: a move that committed meanwhile is seen here
        SELECT j.retried_by,
               pg_catalog.jsonb_build_object(
                   'kind', j.kind, 'payload', j.payload, 'priority', j.priority,
                   'max_attempts', j.max_attempts, 'queue_name', j.queue_name,
                   'flags', pg_catalog.to_jsonb(j.flags), 'unique_key', j.unique_key,
                   'rescheduled_from', j.id)
        INTO v_last, v_spec
        FROM /*schema*/.jobs_history AS j
        WHERE j.id = retry_job.job_id AND j.state IN ('failed', 'cancelled')
        FOR UPDATE;
        v_moved := true;
    END IF;
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
    IF v_moved THEN
        UPDATE /*schema*/.jobs_history AS j SET retried_by = v_id WHERE j.id = retry_job.job_id;
    ELSE
        UPDATE /*schema*/.jobs AS j SET retried_by = v_id WHERE j.id = retry_job.job_id;
    END IF;
    RETURN QUERY SELECT v_id, v_deduped;
END;
$fn$;

-- link_job, as 0009 defined it, accepts parents already moved to jobs_history (finished).
CREATE OR REPLACE FUNCTION /*schema*/.link_job(
    child_id bigint, parents bigint[], run_on_failure boolean)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_parents bigint[];
    v_found   integer;
    v_open    integer;
    v_bad     bigint;
    v_missing bigint;
BEGIN
    v_parents := ARRAY(SELECT DISTINCT p FROM pg_catalog.unnest(parents) AS p
                       WHERE p IS NOT NULL ORDER BY p);
    IF pg_catalog.cardinality(v_parents) = 0 THEN
        RETURN;
    END IF;
    PERFORM 1 FROM /*schema*/.jobs AS j WHERE j.id = ANY (v_parents) ORDER BY j.id
    FOR NO KEY UPDATE;
    UPDATE /*schema*/.jobs AS j SET has_children = true
    WHERE j.id = ANY (v_parents) AND NOT j.has_children;
    -- a parent in history is final: its edge is kept for job_family, nothing waits on it
    SELECT count(*)::integer,
           (count(*) FILTER (WHERE m.state NOT IN ('completed', 'failed', 'cancelled')))::integer,
           min(m.id) FILTER (WHERE m.state IN ('failed', 'cancelled'))
    INTO v_found, v_open, v_bad
    FROM (SELECT j.id, j.state FROM /*schema*/.jobs AS j WHERE j.id = ANY (v_parents)
          UNION ALL
          SELECT h.id, h.state FROM /*schema*/.jobs_history AS h
          WHERE h.id = ANY (v_parents)) AS m;
    IF v_found < pg_catalog.cardinality(v_parents) THEN
        SELECT min(p) INTO v_missing FROM pg_catalog.unnest(v_parents) AS p
        WHERE NOT EXISTS (SELECT 1 FROM /*schema*/.jobs AS j WHERE j.id = p)
          AND NOT EXISTS (SELECT 1 FROM /*schema*/.jobs_history AS h WHERE h.id = p);
        RAISE EXCEPTION 'aioqueue: depends_on names job %, which does not exist', v_missing
            USING ERRCODE = '23503';
    END IF;
    INSERT INTO /*schema*/.job_deps (parent_id, child_id)
    SELECT p, link_job.child_id FROM pg_catalog.unnest(v_parents) AS p;
    IF v_bad IS NOT NULL AND NOT run_on_failure THEN
        UPDATE /*schema*/.jobs AS c
        SET state = 'cancelled', finished_at = pg_catalog.now(), pending_parents = 0,
            run_on_parent_failure = false,
            error = pg_catalog.jsonb_build_object(
                'message', 'parent job ' || v_bad || ' '
                    || (SELECT p.state::text FROM /*schema*/.jobs AS p WHERE p.id = v_bad
                        UNION ALL
                        SELECT h.state::text FROM /*schema*/.jobs_history AS h WHERE h.id = v_bad
                        LIMIT 1)
                    || ': not run (on_parent_failure=cancel)',
                'type', 'ParentFailed', 'traceback', '', 'attempt', 0, 'at', pg_catalog.now())
        WHERE c.id = link_job.child_id;
    ELSIF v_open > 0 THEN
        UPDATE /*schema*/.jobs AS c
        SET state = 'waiting', pending_parents = v_open, run_on_parent_failure = run_on_failure
        WHERE c.id = link_job.child_id;
    ELSE
        UPDATE /*schema*/.jobs AS c
        SET pending_parents = 0, run_on_parent_failure = run_on_failure
        WHERE c.id = link_job.child_id;
    END IF;
END;
$fn$;

-- unsafe_dedupe matches a kept job with the key (SPEC; since 0008 a waiting, running or failed
-- one): a failed one may be in history now. add_jobs as 0010 left it is copied, unchanged, as add_jobs_before_history (as 0010 did),
-- and add_jobs first brings back into jobs the newest failed history job holding the key of an
-- unsafe_dedupe spec, so the dedupe finds it where it always looked. Rare (a key
-- reused after its job finished and moved); the mover moves it out again at its next pass. Two
-- callers bringing back one job take turns on its row: the second finds it gone from history
-- and, waiting on its lock, in jobs at its next statement.
DO $do$
DECLARE
    v_def text := pg_catalog.pg_get_functiondef(
        '/*schema*/.add_jobs(jsonb, timestamptz)'::pg_catalog.regprocedure);
BEGIN
    v_def := pg_catalog.replace(
        v_def, '.add_jobs(specs jsonb', '.add_jobs_before_history(specs jsonb');
    v_def := pg_catalog.replace(v_def, 'add_jobs.now', 'add_jobs_before_history.now');
    v_def := pg_catalog.replace(v_def, 'add_jobs.specs', 'add_jobs_before_history.specs');
    EXECUTE v_def;
END;
$do$;

CREATE OR REPLACE FUNCTION /*schema*/.add_jobs(specs jsonb, now timestamptz DEFAULT NULL)
RETURNS TABLE (ord integer, id bigint, deduped boolean)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF pg_catalog.jsonb_typeof(add_jobs.specs) = 'array' THEN
        WITH keys AS (
            SELECT DISTINCT s.value ->> 'kind' AS kind, s.value ->> 'unique_key' AS unique_key
            FROM pg_catalog.jsonb_array_elements(add_jobs.specs) AS s
            WHERE pg_catalog.jsonb_typeof(s.value) = 'object'
              AND s.value ->> 'on_conflict' = 'unsafe_dedupe'
              AND (s.value ->> 'unique_key') IS NOT NULL
        ), back AS (
            -- of the finished states only 'failed' counts for unsafe_dedupe (0008): the newest
            -- failed job with the key, unless jobs holds a newer one that counts
            DELETE FROM /*schema*/.jobs_history AS h
            USING keys AS k
            WHERE h.state = 'failed' AND h.kind = k.kind AND h.unique_key = k.unique_key
              AND h.id = (SELECT max(x.id) FROM /*schema*/.jobs_history AS x
                          WHERE x.state = 'failed'
                            AND x.kind = k.kind AND x.unique_key = k.unique_key)
              AND NOT EXISTS (SELECT 1 FROM /*schema*/.jobs AS j
                              WHERE j.kind = k.kind AND j.unique_key = k.unique_key
                                AND j.state IN ('pending', 'scheduled', 'running', 'failed')
                                AND j.id > h.id)
            RETURNING h.*
        )
        INSERT INTO /*schema*/.jobs OVERRIDING SYSTEM VALUE SELECT * FROM back;
    END IF;
    RETURN QUERY
    SELECT a.ord, a.id, a.deduped
    FROM /*schema*/.add_jobs_before_history(add_jobs.specs, add_jobs.now) AS a;
END;
$fn$;

REVOKE ALL ON FUNCTION /*schema*/.history_prepare(double precision, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION /*schema*/.history_drop_expired(text, double precision, integer,
    timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION /*schema*/.add_jobs(jsonb, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION /*schema*/.add_jobs_before_history(jsonb, timestamptz) FROM PUBLIC;

-- Privileges: roles that can already claim (UPDATE on jobs, e.g. the aq_worker of
-- examples/sql_least_privilege.sql) get what a worker's maintenance and readers need, so an
-- upgrade does not stop them.
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
            'GRANT SELECT, INSERT, UPDATE, DELETE ON /*schema*/.jobs_history TO %I', v_role);
        EXECUTE pg_catalog.format(
            'GRANT SELECT ON /*schema*/.jobs_history_partitions, '
            '/*schema*/.jobs_history_settings TO %I', v_role);
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION '
            '/*schema*/.add_jobs_before_history(jsonb, timestamptz), '
            '/*schema*/.history_prepare(double precision, timestamptz), '
            '/*schema*/.history_drop_expired(text, double precision, integer, timestamptz) '
            'TO %I', v_role);
    END LOOP;
END;
$do$;
