-- 0002_cron: exactly-once cron slots, enforced by the database.
-- One row per cron name remembers the last slot enqueued; a slot is enqueued only by the
-- transaction that moves last_slot forward, so N workers (with skewed clocks) cannot duplicate it.

CREATE TABLE /*schema*/.crons (
    name        text PRIMARY KEY,
    last_slot   timestamptz NOT NULL,
    last_job_id bigint,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT crons_name_length CHECK (octet_length(name) BETWEEN 1 AND 128)
);
ALTER TABLE /*schema*/.crons ENABLE ROW LEVEL SECURITY;

-- cron_enqueue: enqueue the occurrence of cron `name` for `slot` unless that slot (or a later
-- one) was already enqueued. The job's rescheduled_from is the previous occurrence.
-- Returns the new job id, or NULL when the slot was taken already.
CREATE FUNCTION /*schema*/.cron_enqueue(
    name text, slot timestamptz, spec jsonb, now timestamptz DEFAULT NULL
)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_last   timestamptz;
    v_prev   bigint;
    v_id     bigint;
BEGIN
    -- The database clock is the authority: a worker whose clock runs ahead cannot take future
    -- slots (which would make the others skip the slots in between).
    IF cron_enqueue.slot > coalesce(cron_enqueue.now, pg_catalog.now()) THEN
        RETURN NULL;
    END IF;

    INSERT INTO /*schema*/.crons AS c (name, last_slot)
    VALUES (cron_enqueue.name, '-infinity')
    ON CONFLICT ON CONSTRAINT crons_pkey DO NOTHING;

    SELECT c.last_slot, c.last_job_id INTO v_last, v_prev
    FROM /*schema*/.crons AS c
    WHERE c.name = cron_enqueue.name
    FOR UPDATE;

    IF v_last >= cron_enqueue.slot THEN
        RETURN NULL;
    END IF;

    SELECT r.id INTO v_id
    FROM /*schema*/.add_jobs(
        pg_catalog.jsonb_build_array(
            cron_enqueue.spec
            OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(
                'run_at', cron_enqueue.slot, 'rescheduled_from', v_prev)),
        cron_enqueue.now) AS r;

    UPDATE /*schema*/.crons AS c
    SET last_slot = cron_enqueue.slot, last_job_id = v_id,
        updated_at = coalesce(cron_enqueue.now, pg_catalog.now())
    WHERE c.name = cron_enqueue.name;
    RETURN v_id;
END;
$fn$;

REVOKE ALL ON FUNCTION /*schema*/.cron_enqueue(text, timestamptz, jsonb, timestamptz) FROM PUBLIC;
