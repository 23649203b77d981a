-- Enqueue jobs from the database itself: an AFTER INSERT trigger calls aioqueue.add_job, so every
-- new order gets its `order.confirm` job, from ANY client that inserts one (psql, another
-- service, a batch import), not only from code that remembers to enqueue. The job is written in
-- the inserting transaction: it exists only if the insert commits, and workers are woken at
-- that commit.
--
-- Run it as the owner of the aioqueue schema, after the migrations (`aioqueue migrate`):
--     psql "$(aioqueue db url)" -f examples/trigger.sql
-- add_job is owner-only; to let other roles' inserts enqueue, see sql_security_definer.sql.
-- `aioqueue` is the default schema name: in the add_job call below, examples/trigger.py
-- puts its own schema name instead (a validated identifier).

CREATE TABLE IF NOT EXISTS orders (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email        text NOT NULL,
    total_cents  integer NOT NULL CHECK (total_cents >= 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    confirmed_at timestamptz  -- set by the job's handler
);

CREATE OR REPLACE FUNCTION orders_enqueue_confirmation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- named arguments: any of add_job's parameters (kind, payload, queue_name, run_at,
    -- max_attempts, unique_key, priority, flags, on_conflict, delay, max_delay)
    PERFORM aioqueue.add_job(
        'order.confirm',
        jsonb_build_object('order_id', NEW.id, 'email', NEW.email, 'total_cents', NEW.total_cents),
        unique_key => 'order:' || NEW.id,
        max_attempts => 10
    );
    RETURN NULL;  -- the result of an AFTER trigger is ignored
END;
$$;

-- One add_job call per row. For large multi-row INSERTs, a FOR EACH STATEMENT trigger with
-- `REFERENCING NEW TABLE AS new_orders` can enqueue them all in one aioqueue.add_jobs(jsonb) call.
CREATE OR REPLACE TRIGGER orders_enqueue_confirmation
    AFTER INSERT ON orders
    FOR EACH ROW EXECUTE FUNCTION orders_enqueue_confirmation();
