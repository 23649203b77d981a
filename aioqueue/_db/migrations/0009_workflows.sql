-- 0009_workflows: dependencies between jobs, groups with a completion callback, progress and
-- user metadata (issue 21).
--
-- A job with unfinished parents is 'waiting': a state the claim never reads (its statement,
-- index and plan are unchanged). Edges live in job_deps, keyed by parent, so settling a parent
-- reads its own children only. A trigger on jobs settles children and counts group members in
-- the same transaction that settles a parent or member, whichever statement does it (a worker's
-- completion batch, a cancel, the rescuer, complete()/fail(), plain SQL). Its WHEN clause is
-- false for jobs that have no children and no group, so their updates never call it.
--
-- add_jobs is wrapped, not rewritten: the function every earlier migration defined (with any
-- change to its on_conflict modes before this one) is copied to add_jobs_core, and the new add_jobs reads
-- the workflow keys of each spec (depends_on, on_parent_failure, group_id, meta) around it.
--
-- New columns are NULL or false for every existing job: added without a table rewrite.
-- 'waiting' is added to the enum here and only used inside function bodies (planned on first
-- call, after this transaction commits).

ALTER TYPE /*schema*/.job_state ADD VALUE IF NOT EXISTS 'waiting' BEFORE 'pending';

ALTER TABLE /*schema*/.jobs
    ADD COLUMN has_children boolean NOT NULL DEFAULT false,
    ADD COLUMN pending_parents integer,
    ADD COLUMN run_on_parent_failure boolean,
    ADD COLUMN group_id bigint,
    ADD COLUMN meta jsonb,
    ADD COLUMN progress double precision,
    ADD COLUMN progress_message text,
    ADD CONSTRAINT jobs_meta_size CHECK (octet_length(meta::text) <= 4096),
    ADD CONSTRAINT jobs_progress_range CHECK (progress >= 0 AND progress <= 1),
    ADD CONSTRAINT jobs_progress_message_length CHECK (octet_length(progress_message) <= 1024);

-- One row per edge. No foreign keys: their triggers would run on every update of jobs (the hot
-- path); job_prune.sql deletes the edges of the jobs it deletes, and never deletes a parent
-- whose children have not finished (they may still read its result).
CREATE TABLE /*schema*/.job_deps (
    parent_id bigint NOT NULL,
    child_id  bigint NOT NULL,
    PRIMARY KEY (parent_id, child_id)
);
CREATE INDEX job_deps_child ON /*schema*/.job_deps (child_id);
ALTER TABLE /*schema*/.job_deps ENABLE ROW LEVEL SECURITY;

CREATE TABLE /*schema*/.job_groups (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    total       integer NOT NULL DEFAULT 0,
    completed   integer NOT NULL DEFAULT 0,
    failed      integer NOT NULL DEFAULT 0,
    cancelled   integer NOT NULL DEFAULT 0,
    sealed      boolean NOT NULL DEFAULT false,
    on_complete jsonb,           -- the callback's spec, as add_jobs takes it
    callback_id bigint,          -- set once, by the statement that finishes the group
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
ALTER TABLE /*schema*/.job_groups ENABLE ROW LEVEL SECURITY;

-- group_finish: enqueue a finished group's callback (once: the caller holds the group's row
-- lock and finished_at is still NULL) with the outcome counts in its meta, and wake waiters.
CREATE FUNCTION /*schema*/.group_finish(group_id bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_group  record;
    v_spec   jsonb;
    v_id     bigint;
BEGIN
    SELECT g.* INTO v_group FROM /*schema*/.job_groups AS g WHERE g.id = group_finish.group_id;
    IF v_group.finished_at IS NOT NULL THEN
        RETURN;
    END IF;
    IF v_group.on_complete IS NOT NULL THEN
        v_spec := v_group.on_complete || pg_catalog.jsonb_build_object(
            'meta', coalesce(v_group.on_complete -> 'meta', '{}'::jsonb)
                    || pg_catalog.jsonb_build_object('aioqueue_group', pg_catalog.jsonb_build_object(
                        'id', v_group.id, 'total', v_group.total,
                        'completed', v_group.completed, 'failed', v_group.failed,
                        'cancelled', v_group.cancelled)));
        SELECT r.id INTO v_id FROM /*schema*/.add_jobs(pg_catalog.jsonb_build_array(v_spec)) AS r;
    END IF;
    UPDATE /*schema*/.job_groups AS g
    SET finished_at = pg_catalog.now(), callback_id = v_id
    WHERE g.id = group_finish.group_id;
    IF pg_catalog.pg_notification_queue_usage() <= 0.5 THEN
        PERFORM pg_catalog.pg_notify(/*channel*/, 'f');  -- Queue.wait_group callers look again
    END IF;
END;
$fn$;

-- group_apply: add settled members to a group's counters; when that makes a sealed group
-- complete, finish it (enqueue its callback) in the same transaction.
CREATE FUNCTION /*schema*/.group_apply(
    group_id bigint, completed integer, failed integer, cancelled integer)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_group record;
BEGIN
    UPDATE /*schema*/.job_groups AS g
    SET completed = g.completed + group_apply.completed,
        failed = g.failed + group_apply.failed,
        cancelled = g.cancelled + group_apply.cancelled
    WHERE g.id = group_apply.group_id
    RETURNING g.* INTO v_group;
    IF FOUND AND v_group.sealed AND v_group.finished_at IS NULL
       AND v_group.completed + v_group.failed + v_group.cancelled >= v_group.total THEN
        PERFORM /*schema*/.group_finish(v_group.id);
    END IF;
END;
$fn$;

-- Group members are counted per statement, not per row: the row trigger adds each settled
-- member to a tally ('group:completed:failed:cancelled' in the setting aioqueue.group_tally),
-- and a statement-level trigger applies and empties it once, after the statement's row
-- triggers. A session-level set_config, not a local one: a function's SET clause (search_path,
-- pinned) undoes local settings made inside it at its exit. A rollback (of the transaction or
-- of a savepoint) restores the setting with the rows; nothing leaves a statement non-empty. Updating the group's row once per member made a worker's completion batch
-- rewrite that one row a hundred times (a 40% slower drain of a 10,000-member group).
CREATE FUNCTION /*schema*/.jobs_settled_tally()
RETURNS trigger
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_tally text := pg_catalog.current_setting('aioqueue.group_tally', true);
BEGIN
    IF v_tally IS NULL OR v_tally = '' THEN
        RETURN NULL;  -- every UPDATE OF state (claims, completions) comes here: keep it short
    END IF;
    PERFORM pg_catalog.set_config('aioqueue.group_tally', '', false);
    PERFORM /*schema*/.group_apply(p[1], p[2]::integer, p[3]::integer, p[4]::integer)
    FROM (SELECT pg_catalog.string_to_array(v_tally, ':')::bigint[] AS p) AS x;
    RETURN NULL;
END;
$fn$;

-- jobs_settled: after a job reaches a final state. Tallies it for its group (jobs_settled_tally
-- applies the tally after the statement), then settles its children: on completion each
-- child has one parent fewer to wait for, and runs when none is left; on failure or cancellation
-- children with on_parent_failure='run' do the same, the others are cancelled with the reason,
-- and so are their own descendants (iteratively, breadth first: no recursion depth to exceed).
CREATE FUNCTION /*schema*/.jobs_settled()
RETURNS trigger
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_tally    bigint[];
    v_slot     integer;
    v_frontier bigint[];
    v_ready    boolean := false;
    v_waited   boolean := false;
    v_n        integer;
BEGIN
    IF NEW.group_id IS NOT NULL THEN
        v_tally := coalesce(pg_catalog.string_to_array(
            nullif(pg_catalog.current_setting('aioqueue.group_tally', true), ''), ':')::bigint[],
            ARRAY[NEW.group_id, 0, 0, 0]);
        IF v_tally[1] <> NEW.group_id THEN
            -- another group's members came first in this statement: apply theirs now
            PERFORM /*schema*/.group_apply(v_tally[1], v_tally[2]::integer,
                                           v_tally[3]::integer, v_tally[4]::integer);
            v_tally := ARRAY[NEW.group_id, 0, 0, 0];
        END IF;
        v_slot := CASE NEW.state WHEN 'completed' THEN 2 WHEN 'failed' THEN 3 ELSE 4 END;
        v_tally[v_slot] := v_tally[v_slot] + 1;
        PERFORM pg_catalog.set_config('aioqueue.group_tally',
                                      pg_catalog.array_to_string(v_tally, ':'), false);
    END IF;

    -- a cascade below cancels descendants with UPDATEs that fire this trigger again: those
    -- calls count group members only, the loop settles the children
    IF NOT NEW.has_children
       OR pg_catalog.current_setting('aioqueue.cascading', true) = 'on' THEN
        RETURN NULL;
    END IF;

    IF NEW.state = 'completed' THEN
        WITH locked AS (
            SELECT c.id FROM /*schema*/.jobs AS c
            WHERE c.id IN (SELECT d.child_id FROM /*schema*/.job_deps AS d
                           WHERE d.parent_id = NEW.id)
              AND c.state = 'waiting'
            ORDER BY c.id  -- one lock order: parents settling at once do not deadlock
            FOR UPDATE
        ), changed AS (
            UPDATE /*schema*/.jobs AS c
            SET pending_parents = c.pending_parents - 1,
                state = CASE WHEN c.pending_parents > 1 THEN 'waiting'::/*schema*/.job_state
                             WHEN c.run_at > pg_catalog.now() THEN 'scheduled'::/*schema*/.job_state
                             ELSE 'pending'::/*schema*/.job_state END
            FROM locked AS l
            WHERE c.id = l.id AND c.state = 'waiting'
            RETURNING c.state
        )
        SELECT coalesce(pg_catalog.bool_or(changed.state <> 'waiting'), false)
        INTO v_ready FROM changed;
    ELSE
        PERFORM pg_catalog.set_config('aioqueue.cascading', 'on', true);
        v_frontier := ARRAY[NEW.id];
        WHILE pg_catalog.cardinality(v_frontier) > 0 LOOP
            WITH edges AS (
                SELECT d.child_id, count(*)::integer AS n, min(d.parent_id) AS parent_id
                FROM /*schema*/.job_deps AS d
                WHERE d.parent_id = ANY (v_frontier)
                GROUP BY d.child_id
            ), locked AS (
                SELECT c.id, e.n, e.parent_id FROM /*schema*/.jobs AS c
                JOIN edges AS e ON e.child_id = c.id
                WHERE c.state = 'waiting'
                ORDER BY c.id
                FOR UPDATE OF c
            ), changed AS (
                UPDATE /*schema*/.jobs AS c
                SET pending_parents = CASE WHEN c.run_on_parent_failure
                                           THEN c.pending_parents - l.n ELSE 0 END,
                    state = CASE WHEN NOT coalesce(c.run_on_parent_failure, false)
                                 THEN 'cancelled'::/*schema*/.job_state
                                 WHEN c.pending_parents > l.n THEN 'waiting'::/*schema*/.job_state
                                 WHEN c.run_at > pg_catalog.now()
                                 THEN 'scheduled'::/*schema*/.job_state
                                 ELSE 'pending'::/*schema*/.job_state END,
                    finished_at = CASE WHEN NOT coalesce(c.run_on_parent_failure, false)
                                       THEN pg_catalog.now() END,
                    error = CASE WHEN NOT coalesce(c.run_on_parent_failure, false)
                                 THEN pg_catalog.jsonb_build_object(
                                     'message', 'parent job ' || l.parent_id || ' '
                                         || (SELECT p.state::text FROM /*schema*/.jobs AS p
                                             WHERE p.id = l.parent_id)
                                         || ': not run (on_parent_failure=cancel)',
                                     'type', 'ParentFailed', 'traceback', '',
                                     'attempt', c.attempts, 'at', pg_catalog.now())
                                 ELSE c.error END
                FROM locked AS l
                WHERE c.id = l.id AND c.state = 'waiting'
                RETURNING c.id, c.state, c.has_children, c.waited
            )
            SELECT coalesce(pg_catalog.array_agg(ch.id) FILTER (
                       WHERE ch.state = 'cancelled' AND ch.has_children), '{}'),
                   v_ready OR coalesce(pg_catalog.bool_or(ch.state IN ('pending', 'scheduled')),
                                       false),
                   v_waited OR coalesce(pg_catalog.bool_or(ch.state = 'cancelled' AND ch.waited),
                                        false)
            INTO v_frontier, v_ready, v_waited
            FROM changed AS ch;
        END LOOP;
        PERFORM pg_catalog.set_config('aioqueue.cascading', '', true);
    END IF;

    IF pg_catalog.pg_notification_queue_usage() <= 0.5 THEN
        IF v_ready THEN
            PERFORM pg_catalog.pg_notify(/*channel*/, '');  -- children can run: wake workers
        END IF;
        IF v_waited THEN
            PERFORM pg_catalog.pg_notify(/*channel*/, 'f');  -- a Queue.wait() caller's job ended
        END IF;
    END IF;
    RETURN NULL;
END;
$fn$;

CREATE TRIGGER jobs_settled
    AFTER UPDATE OF state ON /*schema*/.jobs
    FOR EACH ROW
    WHEN ((NEW.has_children OR NEW.group_id IS NOT NULL)
          AND NEW.state IN ('completed', 'failed', 'cancelled')
          AND OLD.state NOT IN ('completed', 'failed', 'cancelled'))
    EXECUTE FUNCTION /*schema*/.jobs_settled();

-- After the row triggers of the same statement (AFTER ROW events fire first).
CREATE TRIGGER jobs_settled_tally
    AFTER UPDATE OF state ON /*schema*/.jobs
    FOR EACH STATEMENT
    EXECUTE FUNCTION /*schema*/.jobs_settled_tally();

-- link_job: make a freshly inserted job wait for its parents (add_jobs' depends_on).
-- Parents are locked in id order and marked has_children, which orders this against a
-- statement settling one of them: whichever commits second sees the other. A parent that does
-- not exist is refused; cycles cannot be built, since every parent exists before its child.
CREATE FUNCTION /*schema*/.link_job(child_id bigint, parents bigint[], run_on_failure boolean)
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
    -- locked first (in id order), then read: a parent settling meanwhile has committed
    PERFORM 1 FROM /*schema*/.jobs AS j WHERE j.id = ANY (v_parents) ORDER BY j.id
    FOR NO KEY UPDATE;
    -- marked once: many children of one parent do not rewrite its row each
    UPDATE /*schema*/.jobs AS j SET has_children = true
    WHERE j.id = ANY (v_parents) AND NOT j.has_children;
    SELECT count(*)::integer,
           (count(*) FILTER (WHERE m.state NOT IN ('completed', 'failed', 'cancelled')))::integer,
           min(m.id) FILTER (WHERE m.state IN ('failed', 'cancelled'))
    INTO v_found, v_open, v_bad
    FROM /*schema*/.jobs AS m
    WHERE m.id = ANY (v_parents);
    IF v_found < pg_catalog.cardinality(v_parents) THEN
        SELECT min(p) INTO v_missing FROM pg_catalog.unnest(v_parents) AS p
        WHERE NOT EXISTS (SELECT 1 FROM /*schema*/.jobs AS j WHERE j.id = p);
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
                    || (SELECT p.state::text FROM /*schema*/.jobs AS p WHERE p.id = v_bad)
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

-- add_jobs_core: a copy of add_jobs as the migrations before this one left it (renaming would
-- break its body's references to its own parameters, add_jobs.now).
DO $copy$
DECLARE
    v_def text := pg_catalog.pg_get_functiondef(
        '/*schema*/.add_jobs(jsonb, timestamptz)'::pg_catalog.regprocedure);
BEGIN
    v_def := pg_catalog.regexp_replace(v_def, '\madd_jobs([.(])', 'add_jobs_core\1', 'g');
    EXECUTE v_def;
END;
$copy$;
REVOKE ALL ON FUNCTION /*schema*/.add_jobs_core(jsonb, timestamptz) FROM PUBLIC;

-- add_jobs: add_jobs_core, plus the workflow keys of a spec:
--   depends_on: [job id | {"ref": i}, ...]: parents, by id or by the index i of an earlier spec
--     of the same call (at most 1000); on_parent_failure: "cancel" (default) | "run";
--   group_id: an unsealed group (job_groups) the job joins; meta: a JSON object (<= 4096 bytes).
-- They apply to jobs this call inserts; a deduped spec returns its existing job unchanged.
-- depends_on and unique_key do not go together (a waiting job holds no key).
CREATE OR REPLACE FUNCTION /*schema*/.add_jobs(specs jsonb, now timestamptz DEFAULT NULL)
RETURNS TABLE (ord integer, id bigint, deduped boolean)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_ids     bigint[];
    v_dedupes boolean[];
    v_bad     integer;
    v_why     text;
    v_row     record;
    v_parents bigint[];
    v_groups  integer;
    v_found   integer;
BEGIN
    IF pg_catalog.jsonb_typeof(specs) IS DISTINCT FROM 'array' OR NOT EXISTS (
        SELECT 1 FROM pg_catalog.jsonb_array_elements(specs) AS s(v)
        WHERE pg_catalog.jsonb_typeof(s.v) = 'object'
          AND (s.v ? 'depends_on' OR s.v ? 'meta' OR s.v ? 'group_id'
               OR s.v ? 'on_parent_failure'))
    THEN
        RETURN QUERY SELECT r.ord, r.id, r.deduped
                     FROM /*schema*/.add_jobs_core(specs, add_jobs.now) AS r;
        RETURN;
    END IF;

    -- check every workflow key before writing anything: the first bad spec is named
    SELECT s.n - 1, x.why INTO v_bad, v_why
    FROM pg_catalog.jsonb_array_elements(specs) WITH ORDINALITY AS s(v, n)
    CROSS JOIN LATERAL (SELECT CASE
        WHEN pg_catalog.jsonb_typeof(s.v) <> 'object' THEN NULL
        WHEN s.v ? 'depends_on' AND pg_catalog.jsonb_typeof(s.v -> 'depends_on') <> 'array'
            THEN 'depends_on must be an array'
        WHEN s.v ? 'depends_on' AND pg_catalog.jsonb_array_length(s.v -> 'depends_on') > 1000
            THEN 'depends_on has more than 1000 parents'
        WHEN s.v ? 'depends_on' AND EXISTS (
            SELECT 1 FROM pg_catalog.jsonb_array_elements(s.v -> 'depends_on') AS e(p)
            WHERE NOT CASE
                WHEN pg_catalog.jsonb_typeof(e.p) = 'number'
                    THEN e.p::text ~ '^[0-9]{1,18}$'
                WHEN pg_catalog.jsonb_typeof(e.p) = 'object'
                    THEN pg_catalog.jsonb_typeof(e.p -> 'ref') = 'number'
                         AND (e.p -> 'ref')::text ~ '^[0-9]{1,9}$'
                         AND (e.p ->> 'ref')::integer < s.n - 1
                ELSE false END)
            THEN 'depends_on entries must be job ids or {"ref": i} of an earlier spec'
        WHEN s.v ? 'depends_on' AND s.v ? 'unique_key'
             AND pg_catalog.jsonb_typeof(s.v -> 'unique_key') <> 'null'
            THEN 'depends_on cannot be combined with unique_key'
        WHEN s.v ? 'on_parent_failure'
             AND coalesce(s.v ->> 'on_parent_failure', '') NOT IN ('cancel', 'run')
            THEN 'on_parent_failure must be "cancel" or "run"'
        WHEN s.v ? 'meta' AND pg_catalog.jsonb_typeof(s.v -> 'meta') NOT IN ('object', 'null')
            THEN 'meta must be a JSON object'
        WHEN s.v ? 'meta' AND pg_catalog.octet_length((s.v -> 'meta')::text) > 4096
            THEN 'meta is over 4096 bytes'
        WHEN s.v ? 'group_id' AND ((s.v -> 'group_id')::text !~ '^[0-9]{1,18}$')
            THEN 'group_id must be a group id'
        END AS why) AS x
    WHERE x.why IS NOT NULL
    ORDER BY s.n
    LIMIT 1;
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'aioqueue: spec %: %', v_bad, v_why USING ERRCODE = '22023';
    END IF;

    SELECT pg_catalog.array_agg(r.id ORDER BY r.ord), pg_catalog.array_agg(r.deduped ORDER BY r.ord)
    INTO v_ids, v_dedupes
    FROM /*schema*/.add_jobs_core(specs, add_jobs.now) AS r;

    -- groups: each named group must exist and be open; its total grows by the jobs added
    WITH wanted AS (
        SELECT (s.v ->> 'group_id')::bigint AS gid, count(*)::integer AS n
        FROM pg_catalog.jsonb_array_elements(specs) WITH ORDINALITY AS s(v, n)
        WHERE s.v ? 'group_id' AND NOT v_dedupes[s.n]
        GROUP BY 1
    ), grown AS (
        UPDATE /*schema*/.job_groups AS g SET total = g.total + w.n
        FROM wanted AS w
        WHERE g.id = w.gid AND NOT g.sealed
        RETURNING g.id
    )
    SELECT (SELECT count(*) FROM wanted)::integer, (SELECT count(*) FROM grown)::integer
    INTO v_groups, v_found;
    IF v_found < v_groups THEN
        RAISE EXCEPTION 'aioqueue: group_id names a group that does not exist or is sealed'
            USING ERRCODE = '22023';
    END IF;

    UPDATE /*schema*/.jobs AS j
    SET meta = CASE WHEN pg_catalog.jsonb_typeof(s.v -> 'meta') = 'object' THEN s.v -> 'meta' END,
        group_id = (s.v ->> 'group_id')::bigint
    FROM pg_catalog.jsonb_array_elements(specs) WITH ORDINALITY AS s(v, n)
    WHERE j.id = v_ids[s.n] AND NOT v_dedupes[s.n]
      AND (s.v ? 'meta' OR s.v ? 'group_id');

    FOR v_row IN
        SELECT s.n, s.v FROM pg_catalog.jsonb_array_elements(specs) WITH ORDINALITY AS s(v, n)
        WHERE s.v ? 'depends_on' AND NOT v_dedupes[s.n]
        ORDER BY s.n
    LOOP
        v_parents := ARRAY(
            SELECT CASE WHEN pg_catalog.jsonb_typeof(e.p) = 'object'
                        THEN v_ids[(e.p ->> 'ref')::integer + 1]
                        ELSE (e.p #>> '{}')::bigint END
            FROM pg_catalog.jsonb_array_elements(v_row.v -> 'depends_on') AS e(p));
        PERFORM /*schema*/.link_job(v_ids[v_row.n], v_parents,
                                    coalesce(v_row.v ->> 'on_parent_failure', 'cancel') = 'run');
    END LOOP;

    RETURN QUERY
        SELECT r.o::integer, r.i, r.d
        FROM unnest(v_ids, v_dedupes) WITH ORDINALITY AS r(i, d, o)  -- multi-argument: FROM only
        ORDER BY r.o;
END;
$fn$;

REVOKE ALL ON FUNCTION /*schema*/.add_jobs(jsonb, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION /*schema*/.link_job(bigint, bigint[], boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION /*schema*/.group_finish(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION /*schema*/.jobs_settled() FROM PUBLIC;
REVOKE ALL ON FUNCTION /*schema*/.jobs_settled_tally() FROM PUBLIC;
REVOKE ALL ON FUNCTION /*schema*/.group_apply(bigint, integer, integer, integer) FROM PUBLIC;

-- seal_group: no member joins a sealed group; sealing one whose members have all finished
-- (or that has none) finishes it now. Returns false if there is no such group.
CREATE FUNCTION /*schema*/.seal_group(group_id bigint)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_group record;
BEGIN
    UPDATE /*schema*/.job_groups AS g SET sealed = true
    WHERE g.id = seal_group.group_id
    RETURNING g.* INTO v_group;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF v_group.finished_at IS NULL
       AND v_group.completed + v_group.failed + v_group.cancelled >= v_group.total THEN
        PERFORM /*schema*/.group_finish(v_group.id);
    END IF;
    RETURN true;
END;
$fn$;

REVOKE ALL ON FUNCTION /*schema*/.seal_group(bigint) FROM PUBLIC;

-- add_job with parents: depends_on has no default, so a call without it never picks this
-- overload (the graphile-style add_job calls resolve as before), and it comes second, before
-- the optional arguments (PostgreSQL wants those last).
CREATE FUNCTION /*schema*/.add_job(
    kind text,
    depends_on bigint[],
    payload jsonb DEFAULT '{}'::jsonb,
    on_parent_failure text DEFAULT 'cancel',
    meta jsonb DEFAULT NULL,
    queue_name text DEFAULT NULL,
    run_at timestamptz DEFAULT NULL,
    max_attempts integer DEFAULT NULL,
    priority integer DEFAULT 0,
    flags text[] DEFAULT NULL,
    delay double precision DEFAULT NULL
)
RETURNS bigint
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
    -- JSON nulls stand for absent keys in add_jobs (a payload's own nulls are kept)
    SELECT r.id FROM /*schema*/.add_jobs(pg_catalog.jsonb_build_array(
        pg_catalog.jsonb_build_object(
            'kind', add_job.kind,
            'depends_on', pg_catalog.to_jsonb(add_job.depends_on),
            'payload', coalesce(add_job.payload, '{}'::jsonb),
            'on_parent_failure', add_job.on_parent_failure,
            'meta', add_job.meta,
            'queue_name', add_job.queue_name,
            'run_at', add_job.run_at,
            'max_attempts', add_job.max_attempts,
            'priority', add_job.priority,
            'flags', pg_catalog.to_jsonb(add_job.flags),
            'delay', add_job.delay))) AS r;
$fn$;

REVOKE ALL ON FUNCTION /*schema*/.add_job(text, bigint[], jsonb, text, jsonb, text, timestamptz,
    integer, integer, text[], double precision) FROM PUBLIC;
