-- Let a low-privilege role enqueue jobs without any access to aioqueue's tables.
-- Run as the owner of the aioqueue schema (the role that ran the migrations).
-- Replace `aioqueue` with your schema name and `app_user` with your role.

CREATE SCHEMA IF NOT EXISTS app_jobs;

CREATE FUNCTION app_jobs.enqueue(kind text, payload jsonb DEFAULT '{}', unique_key text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER                      -- runs with the owner's rights ...
SET search_path = pg_catalog, pg_temp -- ... and cannot be hijacked by objects the caller creates
AS $$
BEGIN
    -- the access checks this wrapper needs go here, e.g. only some kinds:
    IF kind NOT LIKE 'public.%' THEN
        RAISE EXCEPTION 'kind % may not be enqueued by this role', kind USING ERRCODE = '42501';
    END IF;
    RETURN aioqueue.add_job(kind, payload, unique_key := unique_key);
END;
$$;

REVOKE ALL ON FUNCTION app_jobs.enqueue(text, jsonb, text) FROM PUBLIC;
GRANT USAGE ON SCHEMA app_jobs TO app_user;
GRANT EXECUTE ON FUNCTION app_jobs.enqueue(text, jsonb, text) TO app_user;
