-- 0012_notify_once: the wake-up NOTIFY and the constants the SQL side shares, each defined once.
--
-- notify_workers(payload) is the only caller of pg_notify: every statement in sql/ and every
-- function below calls it. It skips the notification while the server's notification queue is
-- over half full: a full queue makes every NOTIFY (and so every enqueue) fail, and workers
-- poll anyway. The payload formats are read in one Python module, aioqueue/_wake.py.
--
-- max_delay_seconds() is the largest delay or max_delay (100 years, config.MAX_DELAY_SECONDS).
--
-- The functions that notified themselves (add_jobs_core, group_finish, jobs_settled,
-- set_limits, resume_queue) are rewritten from their definitions read back from the catalog,
-- as 0010 did for add_jobs: their own "queue over half full" test becomes true (the function
-- makes it), pg_notify becomes notify_workers, and the literal 100 years becomes
-- max_delay_seconds(). claim_gated loses its dead fallback of 25 attempts: the per-kind
-- defaults it is given cover every kind it claims (config.DEFAULT_MAX_ATTEMPTS is their source).
-- set_limits and resume_queue now also skip their wake-up when the queue is over half full.

CREATE FUNCTION /*schema*/.notify_workers(payload text) RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF pg_catalog.pg_notification_queue_usage() > 0.5 THEN
        RETURN false;
    END IF;
    PERFORM pg_catalog.pg_notify(/*channel*/, payload);
    RETURN true;
END;
$fn$;

CREATE FUNCTION /*schema*/.max_delay_seconds() RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT 3153600000::bigint $fn$;

-- Privileges: as for every function here, nothing for PUBLIC. Roles that write jobs or enqueue
-- through add_jobs (e.g. examples/sql_least_privilege.sql's aq_worker) get both, so an upgrade
-- does not stop them.
REVOKE ALL ON FUNCTION /*schema*/.notify_workers(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION /*schema*/.max_delay_seconds() FROM PUBLIC;

DO $do$
DECLARE
    v_role name;
BEGIN
    FOR v_role IN
        SELECT r.rolname FROM pg_catalog.pg_roles AS r
        WHERE r.rolname <> current_user AND NOT r.rolsuper
          AND (pg_catalog.has_table_privilege(r.oid, '/*schema*/.jobs', 'INSERT, UPDATE')
               OR pg_catalog.has_function_privilege(
                   r.oid, '/*schema*/.add_jobs(jsonb, timestamptz)', 'EXECUTE'))
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION /*schema*/.notify_workers(text), '
            '/*schema*/.max_delay_seconds() TO %I', v_role);
    END LOOP;
END;
$do$;

DO $do$
DECLARE
    v_fn  regprocedure;
    v_def text;
    v_new text;
BEGIN
    FOR v_fn IN
        SELECT p.oid::regprocedure
        FROM pg_catalog.pg_proc AS p
        WHERE p.pronamespace = '/*schema*/'::regnamespace
          AND p.proname NOT IN ('notify_workers', 'max_delay_seconds')
          AND (p.prosrc LIKE '%pg_notify(%' OR p.prosrc LIKE '%3153600000%'
               OR p.proname = 'claim_gated')
    LOOP
        v_def := pg_catalog.pg_get_functiondef(v_fn);
        v_new := pg_catalog.replace(v_def,
            'pg_catalog.pg_notification_queue_usage() <= 0.5', 'true');
        v_new := pg_catalog.replace(v_new,
            'pg_catalog.pg_notify(' || pg_catalog.quote_literal(/*channel*/) || ', ',
            '/*schema*/.notify_workers(');
        v_new := pg_catalog.replace(v_new,
            'pg_notify(' || pg_catalog.quote_literal(/*channel*/) || ', ',
            '/*schema*/.notify_workers(');
        v_new := pg_catalog.replace(v_new,  -- the payload on the next line
            'pg_catalog.pg_notify(' || pg_catalog.quote_literal(/*channel*/) || ',',
            '/*schema*/.notify_workers(');
        v_new := pg_catalog.replace(v_new,
            'from 0 to 3153600000 (100 years)''',
            'from 0 to '' || /*schema*/.max_delay_seconds() || '' (100 years)''');
        v_new := pg_catalog.replace(v_new,
            'BETWEEN 0 AND 3153600000', 'BETWEEN 0 AND /*schema*/.max_delay_seconds()');
        v_new := pg_catalog.replace(v_new,
            'p_default_max_attempts[array_position(p_kinds, j.kind)], 25)',
            'p_default_max_attempts[array_position(p_kinds, j.kind)])');
        IF v_new = v_def THEN
            RAISE EXCEPTION 'aioqueue 0012: nothing to rewrite in %', v_fn;
        END IF;
        EXECUTE v_new;
    END LOOP;

    -- every notification goes through notify_workers, every 100 years through
    -- max_delay_seconds: fail the migration if a definition escaped the rewrite
    SELECT pg_catalog.string_agg(p.oid::regprocedure::text, ', ')
    INTO v_def
    FROM pg_catalog.pg_proc AS p
    WHERE p.pronamespace = '/*schema*/'::regnamespace
      AND p.proname NOT IN ('notify_workers', 'max_delay_seconds')
      AND (p.prosrc LIKE '%pg_notify%' OR p.prosrc LIKE '%notification_queue_usage%'
           OR p.prosrc LIKE '%3153600000%'
           OR (p.proname = 'claim_gated' AND p.prosrc LIKE '%, 25)%'));
    IF v_def IS NOT NULL THEN
        RAISE EXCEPTION 'aioqueue 0012: not rewritten: %', v_def;
    END IF;
END;
$do$;
