-- Let a low-privilege role enqueue jobs without any access to aioqueue's tables, and without
-- EXECUTE on add_job/add_jobs themselves (migrations revoke both from PUBLIC; row-level
-- security is on with no policy, so other roles read nothing even if granted SELECT).
--
-- Run as the owner of the aioqueue schema (the role that applied the migrations).
-- Replace `aioqueue` with your schema name, `app_jobs` with a schema for the wrapper and
-- `app_user` with the role that may enqueue. tests/db/test_sql_api.py runs this file.

CREATE SCHEMA IF NOT EXISTS app_jobs;

CREATE FUNCTION app_jobs.app_enqueue(
    kind       text,
    payload    jsonb DEFAULT '{}',
    unique_key text DEFAULT NULL,
    run_at     timestamptz DEFAULT NULL
)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER                       -- runs with the owner's rights ...
SET search_path = pg_catalog, pg_temp  -- ... and resolves names in pg_catalog only, so functions
                                       -- or operators the caller creates cannot hijack it
AS $$
BEGIN
    -- the access checks the calling role needs go here, e.g. only some kinds:
    IF app_enqueue.kind IS NULL OR app_enqueue.kind NOT LIKE 'public.%' THEN
        RAISE EXCEPTION 'kind % may not be enqueued by this role', app_enqueue.kind
            USING ERRCODE = '42501';  -- insufficient_privilege
    END IF;
    -- on_conflict stays 'ignore': replace/supersede would let the caller rewrite or cancel
    -- jobs it did not create
    RETURN aioqueue.add_job(
        app_enqueue.kind,
        coalesce(app_enqueue.payload, '{}'),
        unique_key => app_enqueue.unique_key,
        run_at => app_enqueue.run_at
    );
END;
$$;

-- CREATE FUNCTION grants EXECUTE to PUBLIC: take it back, then grant it to one role only
REVOKE ALL ON FUNCTION app_jobs.app_enqueue(text, jsonb, text, timestamptz) FROM PUBLIC;
GRANT USAGE ON SCHEMA app_jobs TO app_user;
GRANT EXECUTE ON FUNCTION app_jobs.app_enqueue(text, jsonb, text, timestamptz) TO app_user;
