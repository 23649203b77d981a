column crons.last_job_id bigint
column crons.last_slot timestamp with time zone not null
column crons.name text not null
column crons.updated_at timestamp with time zone not null default now()
column flow_key_rates.concurrency_key text not null
column flow_key_rates.kind text not null
column flow_key_rates.tokens double precision not null
column flow_key_rates.tokens_at timestamp with time zone not null
column flow_limits.concurrency integer
column flow_limits.gated boolean default ((concurrency IS NOT NULL) OR (key_concurrency IS NOT NULL) OR (rate_n IS NOT NULL) OR (key_rate_n IS NOT NULL) OR paused) generated
column flow_limits.key_concurrency integer
column flow_limits.key_cursor text
column flow_limits.key_rate_n integer
column flow_limits.key_rate_seconds double precision
column flow_limits.kind text not null
column flow_limits.max_depth bigint
column flow_limits.paused boolean not null default false
column flow_limits.rate_at timestamp with time zone
column flow_limits.rate_n integer
column flow_limits.rate_seconds double precision
column flow_limits.rate_tokens double precision
column flow_limits.updated_at timestamp with time zone not null default now()
column flow_paused_queues.paused_at timestamp with time zone not null default now()
column flow_paused_queues.queue_name text not null
column job_deps.child_id bigint not null
column job_deps.parent_id bigint not null
column job_groups.callback_id bigint
column job_groups.cancelled integer not null default 0
column job_groups.completed integer not null default 0
column job_groups.created_at timestamp with time zone not null default now()
column job_groups.failed integer not null default 0
column job_groups.finished_at timestamp with time zone
column job_groups.id bigint not null identity always
column job_groups.on_complete jsonb
column job_groups.sealed boolean not null default false
column job_groups.total integer not null default 0
column jobs.attempts aioqueue.job_attempts not null default 0
column jobs.cancel_requested boolean not null default false
column jobs.concurrency_key text
column jobs.created_at timestamp with time zone not null default now()
column jobs.error jsonb
column jobs.finished_at timestamp with time zone
column jobs.flags aioqueue.job_flags not null default '{}'::text[]
column jobs.group_id bigint
column jobs.has_children boolean not null default false
column jobs.id bigint not null identity always
column jobs.kind aioqueue.job_kind not null
column jobs.lease_expires_at timestamp with time zone
column jobs.lease_token bigint
column jobs.locked_by text
column jobs.max_attempts aioqueue.job_max_attempts
column jobs.meta jsonb
column jobs.payload jsonb not null default '{}'::jsonb
column jobs.pending_parents integer
column jobs.priority smallint not null default 0
column jobs.progress double precision
column jobs.progress_message text
column jobs.queue_name aioqueue.job_queue_name
column jobs.replaced_by bigint
column jobs.rescheduled_from bigint
column jobs.result jsonb
column jobs.retried_by bigint
column jobs.run_at aioqueue.job_run_at not null default now()
column jobs.run_on_parent_failure boolean
column jobs.started_at timestamp with time zone
column jobs.state aioqueue.job_state not null default 'pending'::aioqueue.job_state
column jobs.unique_key aioqueue.job_unique_key
column jobs.waited boolean not null default false
column jobs_history.attempts aioqueue.job_attempts not null default 0
column jobs_history.cancel_requested boolean not null default false
column jobs_history.concurrency_key text
column jobs_history.created_at timestamp with time zone not null default now()
column jobs_history.error jsonb
column jobs_history.finished_at timestamp with time zone
column jobs_history.flags aioqueue.job_flags not null default '{}'::text[]
column jobs_history.group_id bigint
column jobs_history.has_children boolean not null default false
column jobs_history.id bigint not null
column jobs_history.kind aioqueue.job_kind not null
column jobs_history.lease_expires_at timestamp with time zone
column jobs_history.lease_token bigint
column jobs_history.locked_by text
column jobs_history.max_attempts aioqueue.job_max_attempts
column jobs_history.meta jsonb
column jobs_history.payload jsonb not null default '{}'::jsonb
column jobs_history.pending_parents integer
column jobs_history.priority smallint not null default 0
column jobs_history.progress double precision
column jobs_history.progress_message text
column jobs_history.queue_name aioqueue.job_queue_name
column jobs_history.replaced_by bigint
column jobs_history.rescheduled_from bigint
column jobs_history.result jsonb
column jobs_history.retried_by bigint
column jobs_history.run_at aioqueue.job_run_at not null default now()
column jobs_history.run_on_parent_failure boolean
column jobs_history.started_at timestamp with time zone
column jobs_history.state aioqueue.job_state not null default 'pending'::aioqueue.job_state
column jobs_history.unique_key aioqueue.job_unique_key
column jobs_history.waited boolean not null default false
column jobs_history_cancelled.attempts aioqueue.job_attempts not null default 0
column jobs_history_cancelled.cancel_requested boolean not null default false
column jobs_history_cancelled.concurrency_key text
column jobs_history_cancelled.created_at timestamp with time zone not null default now()
column jobs_history_cancelled.error jsonb
column jobs_history_cancelled.finished_at timestamp with time zone
column jobs_history_cancelled.flags aioqueue.job_flags not null default '{}'::text[]
column jobs_history_cancelled.group_id bigint
column jobs_history_cancelled.has_children boolean not null default false
column jobs_history_cancelled.id bigint not null
column jobs_history_cancelled.kind aioqueue.job_kind not null
column jobs_history_cancelled.lease_expires_at timestamp with time zone
column jobs_history_cancelled.lease_token bigint
column jobs_history_cancelled.locked_by text
column jobs_history_cancelled.max_attempts aioqueue.job_max_attempts
column jobs_history_cancelled.meta jsonb
column jobs_history_cancelled.payload jsonb not null default '{}'::jsonb
column jobs_history_cancelled.pending_parents integer
column jobs_history_cancelled.priority smallint not null default 0
column jobs_history_cancelled.progress double precision
column jobs_history_cancelled.progress_message text
column jobs_history_cancelled.queue_name aioqueue.job_queue_name
column jobs_history_cancelled.replaced_by bigint
column jobs_history_cancelled.rescheduled_from bigint
column jobs_history_cancelled.result jsonb
column jobs_history_cancelled.retried_by bigint
column jobs_history_cancelled.run_at aioqueue.job_run_at not null default now()
column jobs_history_cancelled.run_on_parent_failure boolean
column jobs_history_cancelled.started_at timestamp with time zone
column jobs_history_cancelled.state aioqueue.job_state not null default 'pending'::aioqueue.job_state
column jobs_history_cancelled.unique_key aioqueue.job_unique_key
column jobs_history_cancelled.waited boolean not null default false
column jobs_history_completed.attempts aioqueue.job_attempts not null default 0
column jobs_history_completed.cancel_requested boolean not null default false
column jobs_history_completed.concurrency_key text
column jobs_history_completed.created_at timestamp with time zone not null default now()
column jobs_history_completed.error jsonb
column jobs_history_completed.finished_at timestamp with time zone
column jobs_history_completed.flags aioqueue.job_flags not null default '{}'::text[]
column jobs_history_completed.group_id bigint
column jobs_history_completed.has_children boolean not null default false
column jobs_history_completed.id bigint not null
column jobs_history_completed.kind aioqueue.job_kind not null
column jobs_history_completed.lease_expires_at timestamp with time zone
column jobs_history_completed.lease_token bigint
column jobs_history_completed.locked_by text
column jobs_history_completed.max_attempts aioqueue.job_max_attempts
column jobs_history_completed.meta jsonb
column jobs_history_completed.payload jsonb not null default '{}'::jsonb
column jobs_history_completed.pending_parents integer
column jobs_history_completed.priority smallint not null default 0
column jobs_history_completed.progress double precision
column jobs_history_completed.progress_message text
column jobs_history_completed.queue_name aioqueue.job_queue_name
column jobs_history_completed.replaced_by bigint
column jobs_history_completed.rescheduled_from bigint
column jobs_history_completed.result jsonb
column jobs_history_completed.retried_by bigint
column jobs_history_completed.run_at aioqueue.job_run_at not null default now()
column jobs_history_completed.run_on_parent_failure boolean
column jobs_history_completed.started_at timestamp with time zone
column jobs_history_completed.state aioqueue.job_state not null default 'pending'::aioqueue.job_state
column jobs_history_completed.unique_key aioqueue.job_unique_key
column jobs_history_completed.waited boolean not null default false
column jobs_history_failed.attempts aioqueue.job_attempts not null default 0
column jobs_history_failed.cancel_requested boolean not null default false
column jobs_history_failed.concurrency_key text
column jobs_history_failed.created_at timestamp with time zone not null default now()
column jobs_history_failed.error jsonb
column jobs_history_failed.finished_at timestamp with time zone
column jobs_history_failed.flags aioqueue.job_flags not null default '{}'::text[]
column jobs_history_failed.group_id bigint
column jobs_history_failed.has_children boolean not null default false
column jobs_history_failed.id bigint not null
column jobs_history_failed.kind aioqueue.job_kind not null
column jobs_history_failed.lease_expires_at timestamp with time zone
column jobs_history_failed.lease_token bigint
column jobs_history_failed.locked_by text
column jobs_history_failed.max_attempts aioqueue.job_max_attempts
column jobs_history_failed.meta jsonb
column jobs_history_failed.payload jsonb not null default '{}'::jsonb
column jobs_history_failed.pending_parents integer
column jobs_history_failed.priority smallint not null default 0
column jobs_history_failed.progress double precision
column jobs_history_failed.progress_message text
column jobs_history_failed.queue_name aioqueue.job_queue_name
column jobs_history_failed.replaced_by bigint
column jobs_history_failed.rescheduled_from bigint
column jobs_history_failed.result jsonb
column jobs_history_failed.retried_by bigint
column jobs_history_failed.run_at aioqueue.job_run_at not null default now()
column jobs_history_failed.run_on_parent_failure boolean
column jobs_history_failed.started_at timestamp with time zone
column jobs_history_failed.state aioqueue.job_state not null default 'pending'::aioqueue.job_state
column jobs_history_failed.unique_key aioqueue.job_unique_key
column jobs_history_failed.waited boolean not null default false
column jobs_history_partitions.lower timestamp with time zone not null
column jobs_history_partitions.name text not null
column jobs_history_partitions.state aioqueue.job_state not null
column jobs_history_partitions.upper timestamp with time zone not null
column jobs_history_settings.one boolean not null default true
column jobs_history_settings.partition_seconds double precision not null default 86400
column migrations.applied_at timestamp with time zone not null default now()
column migrations.breaking boolean not null default false
column migrations.name text not null
column migrations.version integer not null
column workers.hostname text not null
column workers.id text not null
column workers.kinds text[] not null
column workers.last_seen_at timestamp with time zone not null default now()
column workers.pid integer not null
column workers.started_at timestamp with time zone not null default now()
constraint crons.crons_name_length CHECK (((octet_length(name) >= 1) AND (octet_length(name) <= 128)))
constraint crons.crons_pkey PRIMARY KEY (name)
constraint flow_key_rates.flow_key_rates_kind_fkey FOREIGN KEY (kind) REFERENCES aioqueue.flow_limits(kind) ON DELETE CASCADE
constraint flow_key_rates.flow_key_rates_pkey PRIMARY KEY (kind, concurrency_key)
constraint flow_limits.flow_limits_check CHECK (((rate_n IS NULL) = (rate_seconds IS NULL)))
constraint flow_limits.flow_limits_check1 CHECK (((key_rate_n IS NULL) = (key_rate_seconds IS NULL)))
constraint flow_limits.flow_limits_concurrency_check CHECK ((concurrency >= 0))
constraint flow_limits.flow_limits_key_concurrency_check CHECK ((key_concurrency >= 1))
constraint flow_limits.flow_limits_key_rate_n_check CHECK ((key_rate_n >= 1))
constraint flow_limits.flow_limits_key_rate_seconds_check CHECK (((key_rate_seconds > (0)::double precision) AND (key_rate_seconds <= (31536000)::double precision)))
constraint flow_limits.flow_limits_kind_check CHECK (((octet_length(kind) >= 1) AND (octet_length(kind) <= 128)))
constraint flow_limits.flow_limits_max_depth_check CHECK ((max_depth >= 0))
constraint flow_limits.flow_limits_pkey PRIMARY KEY (kind)
constraint flow_limits.flow_limits_rate_n_check CHECK ((rate_n >= 1))
constraint flow_limits.flow_limits_rate_seconds_check CHECK (((rate_seconds > (0)::double precision) AND (rate_seconds <= (31536000)::double precision)))
constraint flow_paused_queues.flow_paused_queues_pkey PRIMARY KEY (queue_name)
constraint flow_paused_queues.flow_paused_queues_queue_name_check CHECK (((octet_length(queue_name) >= 1) AND (octet_length(queue_name) <= 128)))
constraint job_deps.job_deps_pkey PRIMARY KEY (parent_id, child_id)
constraint job_groups.job_groups_pkey PRIMARY KEY (id)
constraint jobs.jobs_concurrency_key_length CHECK (((octet_length(concurrency_key) >= 1) AND (octet_length(concurrency_key) <= 256))) NOT VALID
constraint jobs.jobs_meta_size CHECK ((octet_length((meta)::text) <= 4096))
constraint jobs.jobs_pkey PRIMARY KEY (id)
constraint jobs.jobs_progress_message_length CHECK ((octet_length(progress_message) <= 1024))
constraint jobs.jobs_progress_range CHECK (((progress >= (0)::double precision) AND (progress <= (1)::double precision)))
constraint jobs_history_partitions.jobs_history_partitions_check CHECK ((lower < upper))
constraint jobs_history_partitions.jobs_history_partitions_name_key UNIQUE (name)
constraint jobs_history_partitions.jobs_history_partitions_pkey PRIMARY KEY (state, lower)
constraint jobs_history_settings.jobs_history_settings_one_check CHECK (one)
constraint jobs_history_settings.jobs_history_settings_partition_seconds_check CHECK (((partition_seconds >= (60)::double precision) AND (partition_seconds <= ((31 * 86400))::double precision)))
constraint jobs_history_settings.jobs_history_settings_pkey PRIMARY KEY (one)
constraint migrations.migrations_pkey PRIMARY KEY (version)
constraint workers.workers_pkey PRIMARY KEY (id)
domain job_attempts integer jobs_attempts_non_negative CHECK ((VALUE >= 0))
domain job_flags text[] jobs_flags_count CHECK ((cardinality(VALUE) <= 32))
domain job_kind text jobs_kind_length CHECK (((octet_length(VALUE) >= 1) AND (octet_length(VALUE) <= 128)))
domain job_max_attempts integer jobs_max_attempts_positive CHECK ((VALUE >= 1))
domain job_queue_name text jobs_queue_name_length CHECK (((octet_length(VALUE) >= 1) AND (octet_length(VALUE) <= 128)))
domain job_run_at timestamp with time zone jobs_run_at_range CHECK (((VALUE >= '1970-01-01 00:00:00+00'::timestamp with time zone) AND (VALUE < '3000-01-01 00:00:00+00'::timestamp with time zone)))
domain job_unique_key text jobs_unique_key_length CHECK (((octet_length(VALUE) >= 1) AND (octet_length(VALUE) <= 512)))
function aioqueue.add_job(text,bigint[],jsonb,text,jsonb,text,timestamp with time zone,integer,integer,text[],double precision) security_definer=false acl=owner:EXECUTE
CREATE OR REPLACE FUNCTION aioqueue.add_job(kind text, depends_on bigint[], payload jsonb DEFAULT '{}'::jsonb, on_parent_failure text DEFAULT 'cancel'::text, meta jsonb DEFAULT NULL::jsonb, queue_name text DEFAULT NULL::text, run_at timestamp with time zone DEFAULT NULL::timestamp with time zone, max_attempts integer DEFAULT NULL::integer, priority integer DEFAULT 0, flags text[] DEFAULT NULL::text[], delay double precision DEFAULT NULL::double precision)
 RETURNS bigint
 LANGUAGE sql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
    -- JSON nulls stand for absent keys in add_jobs (a payload's own nulls are kept)
    SELECT r.id FROM aioqueue.add_jobs(pg_catalog.jsonb_build_array(
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
$function$
function aioqueue.add_job(text,json,text,timestamp with time zone,integer,text,integer,text[],text,double precision,double precision) security_definer=false acl=owner:EXECUTE
CREATE OR REPLACE FUNCTION aioqueue.add_job(kind text, payload json, queue_name text DEFAULT NULL::text, run_at timestamp with time zone DEFAULT NULL::timestamp with time zone, max_attempts integer DEFAULT NULL::integer, unique_key text DEFAULT NULL::text, priority integer DEFAULT 0, flags text[] DEFAULT NULL::text[], on_conflict text DEFAULT 'ignore'::text, delay double precision DEFAULT NULL::double precision, max_delay double precision DEFAULT NULL::double precision)
 RETURNS bigint
 LANGUAGE sql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
    SELECT aioqueue.add_job(add_job.kind, add_job.payload::jsonb, add_job.queue_name,
        add_job.run_at, add_job.max_attempts, add_job.unique_key, add_job.priority,
        add_job.flags, add_job.on_conflict, add_job.delay, add_job.max_delay);
$function$
function aioqueue.add_job(text,jsonb,text,timestamp with time zone,integer,text,integer,text[],text,double precision,double precision) security_definer=false acl=owner:EXECUTE
CREATE OR REPLACE FUNCTION aioqueue.add_job(kind text, payload jsonb DEFAULT '{}'::jsonb, queue_name text DEFAULT NULL::text, run_at timestamp with time zone DEFAULT NULL::timestamp with time zone, max_attempts integer DEFAULT NULL::integer, unique_key text DEFAULT NULL::text, priority integer DEFAULT 0, flags text[] DEFAULT NULL::text[], on_conflict text DEFAULT 'ignore'::text, delay double precision DEFAULT NULL::double precision, max_delay double precision DEFAULT NULL::double precision)
 RETURNS bigint
 LANGUAGE sql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
    SELECT r.id FROM aioqueue.add_jobs(pg_catalog.jsonb_build_array(
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
$function$
function aioqueue.add_job(text,text,text,timestamp with time zone,integer,text,integer,text[],text,double precision,double precision) security_definer=false acl=owner:EXECUTE
CREATE OR REPLACE FUNCTION aioqueue.add_job(kind text, payload text, queue_name text DEFAULT NULL::text, run_at timestamp with time zone DEFAULT NULL::timestamp with time zone, max_attempts integer DEFAULT NULL::integer, unique_key text DEFAULT NULL::text, priority integer DEFAULT 0, flags text[] DEFAULT NULL::text[], on_conflict text DEFAULT 'ignore'::text, delay double precision DEFAULT NULL::double precision, max_delay double precision DEFAULT NULL::double precision)
 RETURNS bigint
 LANGUAGE sql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
    SELECT aioqueue.add_job(add_job.kind, add_job.payload::jsonb, add_job.queue_name,
        add_job.run_at, add_job.max_attempts, add_job.unique_key, add_job.priority,
        add_job.flags, add_job.on_conflict, add_job.delay, add_job.max_delay);
$function$
function aioqueue.add_jobs(json,timestamp with time zone) security_definer=false acl=owner:EXECUTE
CREATE OR REPLACE FUNCTION aioqueue.add_jobs(specs json, now timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS TABLE(ord integer, id bigint, deduped boolean)
 LANGUAGE sql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
    SELECT r.ord, r.id, r.deduped
    FROM aioqueue.add_jobs(add_jobs.specs::jsonb, add_jobs.now) AS r;
$function$
function aioqueue.add_jobs(jsonb,timestamp with time zone) security_definer=false acl=owner:EXECUTE
CREATE OR REPLACE FUNCTION aioqueue.add_jobs(specs jsonb, now timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS TABLE(ord integer, id bigint, deduped boolean)
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
            DELETE FROM aioqueue.jobs_history AS h
            USING keys AS k
            WHERE h.state = 'failed' AND h.kind = k.kind AND h.unique_key = k.unique_key
              AND h.id = (SELECT max(x.id) FROM aioqueue.jobs_history AS x
                          WHERE x.state = 'failed'
                            AND x.kind = k.kind AND x.unique_key = k.unique_key)
              AND NOT EXISTS (SELECT 1 FROM aioqueue.jobs AS j
                              WHERE j.kind = k.kind AND j.unique_key = k.unique_key
                                AND j.state IN ('pending', 'scheduled', 'running', 'failed')
                                AND j.id > h.id)
            RETURNING h.*
        )
        INSERT INTO aioqueue.jobs OVERRIDING SYSTEM VALUE SELECT * FROM back;
    END IF;
    RETURN QUERY
    SELECT a.ord, a.id, a.deduped
    FROM aioqueue.add_jobs_before_history(add_jobs.specs, add_jobs.now) AS a;
END;
$function$
function aioqueue.add_jobs(text,timestamp with time zone) security_definer=false acl=owner:EXECUTE
CREATE OR REPLACE FUNCTION aioqueue.add_jobs(specs text, now timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS TABLE(ord integer, id bigint, deduped boolean)
 LANGUAGE sql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
    SELECT r.ord, r.id, r.deduped
    FROM aioqueue.add_jobs(add_jobs.specs::jsonb, add_jobs.now) AS r;
$function$
function aioqueue.add_jobs_before_history(jsonb,timestamp with time zone) security_definer=false acl=owner:EXECUTE pg_write_all_data:EXECUTE
CREATE OR REPLACE FUNCTION aioqueue.add_jobs_before_history(specs jsonb, now timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS TABLE(ord integer, id bigint, deduped boolean)
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
    FROM aioqueue.add_jobs_without_keys(add_jobs_before_history.specs, add_jobs_before_history.now) AS a;
    IF v_keyed THEN  -- a later statement: it sees the rows just written
        UPDATE aioqueue.jobs AS j
        SET concurrency_key = s.value ->> 'concurrency_key'
        FROM unnest(v_ords, v_ids, v_dd) AS r(o, i, d)
        JOIN jsonb_array_elements(add_jobs_before_history.specs) WITH ORDINALITY AS s ON s.ordinality = r.o
        WHERE j.id = r.i
          AND (s.value ->> 'concurrency_key') IS NOT NULL
          AND j.state IN ('waiting', 'pending', 'scheduled')
          AND (NOT r.d
               OR coalesce(s.value ->> 'on_conflict', 'ignore')
                  IN ('replace', 'preserve_run_at', 'supersede'));
    END IF;
    RETURN QUERY
    SELECT r.o, r.i, r.d FROM unnest(v_ords, v_ids, v_dd) AS r(o, i, d) ORDER BY r.o;
END;
$function$
function aioqueue.add_jobs_core(jsonb,timestamp with time zone) security_definer=false acl=owner:EXECUTE
CREATE OR REPLACE FUNCTION aioqueue.add_jobs_core(specs jsonb, now timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS TABLE(ord integer, id bigint, deduped boolean)
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
DECLARE
    v_now         timestamptz := coalesce(add_jobs_core.now, pg_catalog.now());
    v_spec        record;
    v_run_at      timestamptz;
    v_state       aioqueue.job_state;
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
    v_seq         regclass := pg_catalog.pg_get_serial_sequence('aioqueue.jobs', 'id');
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
        SELECT d.field || ' must be a number of seconds from 0 to ' || aioqueue.max_delay_seconds() || ' (100 years)'
        FROM (VALUES ('delay'), ('max_delay')) AS d(field)
        WHERE pg_catalog.jsonb_typeof(s.value -> d.field) <> 'null'
          AND (pg_catalog.jsonb_typeof(s.value -> d.field) <> 'number'
               OR (s.value ->> d.field)::numeric NOT BETWEEN 0 AND aioqueue.max_delay_seconds())
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
        INSERT INTO aioqueue.jobs AS j
            (id, kind, payload, state, priority, run_at, max_attempts, queue_name, flags,
             rescheduled_from, created_at)
        OVERRIDING SYSTEM VALUE
        SELECT src.id, src.spec ->> 'kind', coalesce(src.spec -> 'payload', '{}'::jsonb),
               CASE WHEN src.run_at > v_now THEN 'scheduled'::aioqueue.job_state
                    ELSE 'pending'::aioqueue.job_state END,
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
                SELECT j.id INTO v_id FROM aioqueue.jobs AS j
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
                INSERT INTO aioqueue.jobs AS j
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
                SELECT j.id INTO v_id FROM aioqueue.jobs AS j
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
            INSERT INTO aioqueue.jobs AS j
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
                    THEN 'scheduled'::aioqueue.job_state
                    ELSE 'pending'::aioqueue.job_state END
            WHERE j.state IN ('pending', 'scheduled')
            RETURNING j.id, (j.xmax <> 0) INTO v_id, v_deduped;
            IF v_id IS NOT NULL THEN
                EXIT attempt;
            END IF;
            -- The match is running: release its key (and for supersede ask it to stop), then insert.
            -- Its current attempt may finish, but it is never run again (graphile sets attempts
            -- to max_attempts): max_attempts drops to the attempts made, and replaced_by (set
            -- below) makes job_finish_many settle a retry or a give-back for good.
            UPDATE aioqueue.jobs AS j
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
            UPDATE aioqueue.jobs AS j SET replaced_by = v_id WHERE j.id = v_running_id;
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
    IF true THEN
        IF pg_catalog.cardinality(v_cancel_ids) > 0 THEN
            -- at most 300 ids per hint: a payload of 8000 bytes or more fails the whole call
            FOR v_chunk IN 0 .. (pg_catalog.cardinality(v_cancel_ids) - 1) / 300 LOOP
                PERFORM aioqueue.notify_workers('c:' || pg_catalog.array_to_string(
                    v_cancel_ids[v_chunk * 300 + 1 : v_chunk * 300 + 300], ','));
            END LOOP;
        END IF;
        IF v_wake_now THEN
            PERFORM aioqueue.notify_workers('');
        ELSIF v_wake_at IS NOT NULL THEN
            PERFORM aioqueue.notify_workers(
                't:' || EXTRACT(epoch FROM v_wake_at)::text);
        END IF;
    END IF;
END;
$function$
function aioqueue.add_jobs_without_keys(jsonb,timestamp with time zone) security_definer=false acl=owner:EXECUTE pg_write_all_data:EXECUTE
CREATE OR REPLACE FUNCTION aioqueue.add_jobs_without_keys(specs jsonb, now timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS TABLE(ord integer, id bigint, deduped boolean)
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
                     FROM aioqueue.add_jobs_core(specs, add_jobs_without_keys.now) AS r;
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
    FROM aioqueue.add_jobs_core(specs, add_jobs_without_keys.now) AS r;

    -- groups: each named group must exist and be open; its total grows by the jobs added
    WITH wanted AS (
        SELECT (s.v ->> 'group_id')::bigint AS gid, count(*)::integer AS n
        FROM pg_catalog.jsonb_array_elements(specs) WITH ORDINALITY AS s(v, n)
        WHERE s.v ? 'group_id' AND NOT v_dedupes[s.n]
        GROUP BY 1
    ), grown AS (
        UPDATE aioqueue.job_groups AS g SET total = g.total + w.n
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

    UPDATE aioqueue.jobs AS j
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
        PERFORM aioqueue.link_job(v_ids[v_row.n], v_parents,
                                    coalesce(v_row.v ->> 'on_parent_failure', 'cancel') = 'run');
    END LOOP;

    RETURN QUERY
        SELECT r.o::integer, r.i, r.d
        FROM unnest(v_ids, v_dedupes) WITH ORDINALITY AS r(i, d, o)  -- multi-argument: FROM only
        ORDER BY r.o;
END;
$function$
function aioqueue.claim_gated(text[],integer[],text[],integer,text,double precision,timestamp with time zone) security_definer=false acl=owner:EXECUTE pg_write_all_data:EXECUTE
CREATE OR REPLACE FUNCTION aioqueue.claim_gated(p_kinds text[], p_default_max_attempts integer[], p_forbidden text[], p_batch integer, p_worker text, p_lease double precision, p_now timestamp with time zone)
 RETURNS TABLE(id bigint, kind text, payload text, attempts integer, max_attempts integer, lease_token bigint, priority smallint, run_at_us bigint, queue_name text, flags text[], unique_key text, created_at_us bigint, meta text)
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
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
    PERFORM 1 FROM aioqueue.flow_limits AS f
    WHERE f.kind = ANY (p_kinds) AND f.gated
    ORDER BY f.kind
    FOR NO KEY UPDATE;

    FOR r IN SELECT * FROM aioqueue.flow_limits AS f
             WHERE f.kind = ANY (p_kinds) AND f.gated AND NOT f.paused
             ORDER BY f.kind LOOP
        EXIT WHEN v_left <= 0;
        v_room := v_left;
        IF r.concurrency IS NOT NULL THEN
            SELECT count(*) INTO v_running FROM aioqueue.jobs AS j
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
            DELETE FROM aioqueue.flow_key_rates AS b
            WHERE b.kind = r.kind AND b.concurrency_key = ANY (ARRAY(
                SELECT o.concurrency_key FROM aioqueue.flow_key_rates AS o
                WHERE o.kind = r.kind
                  AND o.tokens_at <= v_clock - make_interval(secs => r.key_rate_seconds)
                ORDER BY o.kind, o.tokens_at
                LIMIT greatest(v_room, 0) + 64));
        END IF;
        CONTINUE WHEN v_room <= 0;  -- the bucket is path-independent: nothing to write
        v_kind_n := 0;
        IF r.key_concurrency IS NULL AND r.key_rate_n IS NULL THEN
            v_got := ARRAY(
                SELECT j.id FROM aioqueue.jobs AS j
                WHERE j.kind = r.kind
                  AND j.state IN ('pending', 'scheduled')
                  AND j.run_at <= v_now
                  AND NOT (j.flags && p_forbidden)
                  AND (j.queue_name IS NULL OR (
                        NOT EXISTS (SELECT 1 FROM aioqueue.flow_paused_queues AS q
                                    WHERE q.queue_name = j.queue_name)
                        AND NOT EXISTS (
                            SELECT 1 FROM aioqueue.jobs AS h
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
            FROM (SELECT j.concurrency_key AS k, count(*) AS n FROM aioqueue.jobs AS j
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
                        SELECT (SELECT j.concurrency_key FROM aioqueue.jobs AS j
                                WHERE j.kind = r.kind AND j.concurrency_key > v_from
                                  AND j.concurrency_key IS NOT NULL
                                  AND j.state IN ('pending', 'scheduled')
                                ORDER BY j.kind, j.concurrency_key
                                LIMIT 1), 1
                        UNION ALL
                        SELECT (SELECT j.concurrency_key FROM aioqueue.jobs AS j
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
                             FROM aioqueue.flow_key_rates AS b
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
                        SELECT j.id FROM aioqueue.jobs AS j
                        WHERE j.kind = r.kind AND j.concurrency_key = k.key
                          AND j.state IN ('pending', 'scheduled')
                          AND j.run_at <= v_now
                          AND NOT (j.flags && p_forbidden)
                          AND (j.queue_name IS NULL OR (
                                NOT EXISTS (SELECT 1 FROM aioqueue.flow_paused_queues AS q
                                            WHERE q.queue_name = j.queue_name)
                                AND NOT EXISTS (
                                    SELECT 1 FROM aioqueue.jobs AS h
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
                UPDATE aioqueue.flow_limits AS f SET key_cursor = v_key
                WHERE f.kind = r.kind AND f.key_cursor IS DISTINCT FROM v_key;
                IF r.key_rate_n IS NOT NULL AND v_kind_n > 0 THEN  -- the served keys' buckets
                    INSERT INTO aioqueue.flow_key_rates AS b
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
                    SELECT j.id FROM aioqueue.jobs AS j
                    WHERE j.id = ANY (ARRAY(
                            SELECT w.id FROM (
                                SELECT u.id, u.concurrency_key FROM aioqueue.jobs AS u
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
                            NOT EXISTS (SELECT 1 FROM aioqueue.flow_paused_queues AS q
                                        WHERE q.queue_name = j.queue_name)
                            AND NOT EXISTS (
                                SELECT 1 FROM aioqueue.jobs AS h
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
            UPDATE aioqueue.flow_limits AS f
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
        UPDATE aioqueue.jobs AS j
        SET state = 'running',
            attempts = least(j.attempts, 2147483646) + 1,
            max_attempts = coalesce(
                j.max_attempts, p_default_max_attempts[array_position(p_kinds, j.kind)]),
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
$function$
function aioqueue.cron_enqueue(text,timestamp with time zone,jsonb,timestamp with time zone) security_definer=false acl=owner:EXECUTE
CREATE OR REPLACE FUNCTION aioqueue.cron_enqueue(name text, slot timestamp with time zone, spec jsonb, now timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS bigint
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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

    INSERT INTO aioqueue.crons AS c (name, last_slot)
    VALUES (cron_enqueue.name, '-infinity')
    ON CONFLICT ON CONSTRAINT crons_pkey DO NOTHING;

    SELECT c.last_slot, c.last_job_id INTO v_last, v_prev
    FROM aioqueue.crons AS c
    WHERE c.name = cron_enqueue.name
    FOR UPDATE;

    IF v_last >= cron_enqueue.slot THEN
        RETURN NULL;
    END IF;

    SELECT r.id INTO v_id
    FROM aioqueue.add_jobs(
        pg_catalog.jsonb_build_array(
            cron_enqueue.spec
            OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(
                'run_at', cron_enqueue.slot, 'rescheduled_from', v_prev)),
        cron_enqueue.now) AS r;

    UPDATE aioqueue.crons AS c
    SET last_slot = cron_enqueue.slot, last_job_id = v_id,
        updated_at = coalesce(cron_enqueue.now, pg_catalog.now())
    WHERE c.name = cron_enqueue.name;
    RETURN v_id;
END;
$function$
function aioqueue.group_apply(bigint,integer,integer,integer) security_definer=false acl=owner:EXECUTE
CREATE OR REPLACE FUNCTION aioqueue.group_apply(group_id bigint, completed integer, failed integer, cancelled integer)
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
DECLARE
    v_group record;
BEGIN
    UPDATE aioqueue.job_groups AS g
    SET completed = g.completed + group_apply.completed,
        failed = g.failed + group_apply.failed,
        cancelled = g.cancelled + group_apply.cancelled
    WHERE g.id = group_apply.group_id
    RETURNING g.* INTO v_group;
    IF FOUND AND v_group.sealed AND v_group.finished_at IS NULL
       AND v_group.completed + v_group.failed + v_group.cancelled >= v_group.total THEN
        PERFORM aioqueue.group_finish(v_group.id);
    END IF;
END;
$function$
function aioqueue.group_finish(bigint) security_definer=false acl=owner:EXECUTE
CREATE OR REPLACE FUNCTION aioqueue.group_finish(group_id bigint)
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
DECLARE
    v_group  record;
    v_spec   jsonb;
    v_id     bigint;
BEGIN
    SELECT g.* INTO v_group FROM aioqueue.job_groups AS g WHERE g.id = group_finish.group_id;
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
        SELECT r.id INTO v_id FROM aioqueue.add_jobs(pg_catalog.jsonb_build_array(v_spec)) AS r;
    END IF;
    UPDATE aioqueue.job_groups AS g
    SET finished_at = pg_catalog.now(), callback_id = v_id
    WHERE g.id = group_finish.group_id;
    IF true THEN
        PERFORM aioqueue.notify_workers('f');  -- Queue.wait_group callers look again
    END IF;
END;
$function$
function aioqueue.history_drop_expired(text,double precision,integer,timestamp with time zone) security_definer=true acl=owner:EXECUTE pg_write_all_data:EXECUTE
CREATE OR REPLACE FUNCTION aioqueue.history_drop_expired(state text, retention_seconds double precision, max_partitions integer DEFAULT 10, now timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS bigint
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET lock_timeout TO '2s'
AS $function$
DECLARE
    v_part    record;
    v_rows    bigint;
    v_total   bigint := 0;
    v_now     timestamptz := coalesce(history_drop_expired.now, pg_catalog.now());
BEGIN
    PERFORM 1 FROM aioqueue.jobs_history_settings FOR UPDATE;  -- one maintainer at a time
    FOR v_part IN
        SELECT p.name, p.lower FROM aioqueue.jobs_history_partitions AS p
        WHERE p.state = history_drop_expired.state::aioqueue.job_state
          AND p.upper <= v_now
              - pg_catalog.make_interval(secs => history_drop_expired.retention_seconds)
          -- the newest partition stays: the next one starts where it ends
          AND p.upper < (SELECT max(x.upper) FROM aioqueue.jobs_history_partitions AS x
                         WHERE x.state = p.state)
        ORDER BY p.lower
        LIMIT history_drop_expired.max_partitions
    LOOP
        EXECUTE pg_catalog.format(
            'DELETE FROM aioqueue.job_deps AS e USING aioqueue.%I AS h '
            'WHERE (h.has_children OR h.pending_parents IS NOT NULL) '
            'AND (e.parent_id = h.id OR e.child_id = h.id)', v_part.name);
        EXECUTE pg_catalog.format('SELECT count(*) FROM aioqueue.%I', v_part.name)
            INTO v_rows;
        EXECUTE pg_catalog.format('DROP TABLE aioqueue.%I', v_part.name);
        DELETE FROM aioqueue.jobs_history_partitions AS p WHERE p.name = v_part.name;
        v_total := v_total + v_rows;
    END LOOP;
    RETURN v_total;
END;
$function$
function aioqueue.history_prepare(double precision,timestamp with time zone) security_definer=true acl=owner:EXECUTE pg_write_all_data:EXECUTE
CREATE OR REPLACE FUNCTION aioqueue.history_prepare(ahead_seconds double precision, now timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET lock_timeout TO '2s'
 SET "DateStyle" TO 'ISO, YMD'
AS $function$
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
    FROM aioqueue.jobs_history_settings AS s FOR UPDATE;
    -- at least two widths ahead: a partition is there well before its first row
    v_until := v_now + greatest(
        pg_catalog.make_interval(secs => history_prepare.ahead_seconds), 2 * v_width);
    FOREACH v_state IN ARRAY ARRAY['completed', 'failed', 'cancelled'] LOOP
        SELECT max(p.upper) INTO v_lower FROM aioqueue.jobs_history_partitions AS p
        WHERE p.state = v_state::aioqueue.job_state;
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
                'CREATE TABLE aioqueue.%I (LIKE aioqueue.jobs_history INCLUDING DEFAULTS)',
                v_name);
            EXECUTE pg_catalog.format(
                'ALTER TABLE aioqueue.%I ATTACH PARTITION aioqueue.%I '
                'FOR VALUES FROM (%L) TO (%L)',
                'jobs_history_' || v_state, v_name,
                coalesce(v_lower, '-infinity'::timestamptz), v_upper);
            INSERT INTO aioqueue.jobs_history_partitions (state, lower, upper, name)
            VALUES (v_state::aioqueue.job_state, coalesce(v_lower, '-infinity'), v_upper,
                    v_name);
            v_lower := v_upper;
            v_made := v_made + 1;
        END LOOP;
    END LOOP;
    RETURN v_made;
END;
$function$
function aioqueue.jobs_settled() security_definer=false acl=owner:EXECUTE
CREATE OR REPLACE FUNCTION aioqueue.jobs_settled()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
            PERFORM aioqueue.group_apply(v_tally[1], v_tally[2]::integer,
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
            SELECT c.id FROM aioqueue.jobs AS c
            WHERE c.id IN (SELECT d.child_id FROM aioqueue.job_deps AS d
                           WHERE d.parent_id = NEW.id)
              AND c.state = 'waiting'
            ORDER BY c.id  -- one lock order: parents settling at once do not deadlock
            FOR UPDATE
        ), changed AS (
            UPDATE aioqueue.jobs AS c
            SET pending_parents = c.pending_parents - 1,
                state = CASE WHEN c.pending_parents > 1 THEN 'waiting'::aioqueue.job_state
                             WHEN c.run_at > pg_catalog.now() THEN 'scheduled'::aioqueue.job_state
                             ELSE 'pending'::aioqueue.job_state END
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
                FROM aioqueue.job_deps AS d
                WHERE d.parent_id = ANY (v_frontier)
                GROUP BY d.child_id
            ), locked AS (
                SELECT c.id, e.n, e.parent_id FROM aioqueue.jobs AS c
                JOIN edges AS e ON e.child_id = c.id
                WHERE c.state = 'waiting'
                ORDER BY c.id
                FOR UPDATE OF c
            ), changed AS (
                UPDATE aioqueue.jobs AS c
                SET pending_parents = CASE WHEN c.run_on_parent_failure
                                           THEN c.pending_parents - l.n ELSE 0 END,
                    state = CASE WHEN NOT coalesce(c.run_on_parent_failure, false)
                                 THEN 'cancelled'::aioqueue.job_state
                                 WHEN c.pending_parents > l.n THEN 'waiting'::aioqueue.job_state
                                 WHEN c.run_at > pg_catalog.now()
                                 THEN 'scheduled'::aioqueue.job_state
                                 ELSE 'pending'::aioqueue.job_state END,
                    finished_at = CASE WHEN NOT coalesce(c.run_on_parent_failure, false)
                                       THEN pg_catalog.now() END,
                    error = CASE WHEN NOT coalesce(c.run_on_parent_failure, false)
                                 THEN pg_catalog.jsonb_build_object(
                                     'message', 'parent job ' || l.parent_id || ' '
                                         || (SELECT p.state::text FROM aioqueue.jobs AS p
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

    IF true THEN
        IF v_ready THEN
            PERFORM aioqueue.notify_workers('');  -- children can run: wake workers
        END IF;
        IF v_waited THEN
            PERFORM aioqueue.notify_workers('f');  -- a Queue.wait() caller's job ended
        END IF;
    END IF;
    RETURN NULL;
END;
$function$
function aioqueue.jobs_settled_tally() security_definer=false acl=owner:EXECUTE
CREATE OR REPLACE FUNCTION aioqueue.jobs_settled_tally()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
DECLARE
    v_tally text := pg_catalog.current_setting('aioqueue.group_tally', true);
BEGIN
    IF v_tally IS NULL OR v_tally = '' THEN
        RETURN NULL;  -- every UPDATE OF state (claims, completions) comes here: keep it short
    END IF;
    PERFORM pg_catalog.set_config('aioqueue.group_tally', '', false);
    PERFORM aioqueue.group_apply(p[1], p[2]::integer, p[3]::integer, p[4]::integer)
    FROM (SELECT pg_catalog.string_to_array(v_tally, ':')::bigint[] AS p) AS x;
    RETURN NULL;
END;
$function$
function aioqueue.link_job(bigint,bigint[],boolean) security_definer=false acl=owner:EXECUTE
CREATE OR REPLACE FUNCTION aioqueue.link_job(child_id bigint, parents bigint[], run_on_failure boolean)
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
    PERFORM 1 FROM aioqueue.jobs AS j WHERE j.id = ANY (v_parents) ORDER BY j.id
    FOR NO KEY UPDATE;
    UPDATE aioqueue.jobs AS j SET has_children = true
    WHERE j.id = ANY (v_parents) AND NOT j.has_children;
    -- a parent in history is final: its edge is kept for job_family, nothing waits on it
    SELECT count(*)::integer,
           (count(*) FILTER (WHERE m.state NOT IN ('completed', 'failed', 'cancelled')))::integer,
           min(m.id) FILTER (WHERE m.state IN ('failed', 'cancelled'))
    INTO v_found, v_open, v_bad
    FROM (SELECT j.id, j.state FROM aioqueue.jobs AS j WHERE j.id = ANY (v_parents)
          UNION ALL
          SELECT h.id, h.state FROM aioqueue.jobs_history AS h
          WHERE h.id = ANY (v_parents)) AS m;
    IF v_found < pg_catalog.cardinality(v_parents) THEN
        SELECT min(p) INTO v_missing FROM pg_catalog.unnest(v_parents) AS p
        WHERE NOT EXISTS (SELECT 1 FROM aioqueue.jobs AS j WHERE j.id = p)
          AND NOT EXISTS (SELECT 1 FROM aioqueue.jobs_history AS h WHERE h.id = p);
        RAISE EXCEPTION 'aioqueue: depends_on names job %, which does not exist', v_missing
            USING ERRCODE = '23503';
    END IF;
    INSERT INTO aioqueue.job_deps (parent_id, child_id)
    SELECT p, link_job.child_id FROM pg_catalog.unnest(v_parents) AS p;
    IF v_bad IS NOT NULL AND NOT run_on_failure THEN
        UPDATE aioqueue.jobs AS c
        SET state = 'cancelled', finished_at = pg_catalog.now(), pending_parents = 0,
            run_on_parent_failure = false,
            error = pg_catalog.jsonb_build_object(
                'message', 'parent job ' || v_bad || ' '
                    || (SELECT p.state::text FROM aioqueue.jobs AS p WHERE p.id = v_bad
                        UNION ALL
                        SELECT h.state::text FROM aioqueue.jobs_history AS h WHERE h.id = v_bad
                        LIMIT 1)
                    || ': not run (on_parent_failure=cancel)',
                'type', 'ParentFailed', 'traceback', '', 'attempt', 0, 'at', pg_catalog.now())
        WHERE c.id = link_job.child_id;
    ELSIF v_open > 0 THEN
        UPDATE aioqueue.jobs AS c
        SET state = 'waiting', pending_parents = v_open, run_on_parent_failure = run_on_failure
        WHERE c.id = link_job.child_id;
    ELSE
        UPDATE aioqueue.jobs AS c
        SET pending_parents = 0, run_on_parent_failure = run_on_failure
        WHERE c.id = link_job.child_id;
    END IF;
END;
$function$
function aioqueue.max_delay_seconds() security_definer=false acl=owner:EXECUTE pg_write_all_data:EXECUTE
CREATE OR REPLACE FUNCTION aioqueue.max_delay_seconds()
 RETURNS bigint
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$ SELECT 3153600000::bigint $function$
function aioqueue.notify_workers(text) security_definer=false acl=owner:EXECUTE pg_write_all_data:EXECUTE
CREATE OR REPLACE FUNCTION aioqueue.notify_workers(payload text)
 RETURNS boolean
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
BEGIN
    IF pg_catalog.pg_notification_queue_usage() > 0.5 THEN
        RETURN false;
    END IF;
    PERFORM pg_catalog.pg_notify('aioqueue_aioqueue', payload);
    RETURN true;
END;
$function$
function aioqueue.pause_queue(text) security_definer=false acl=owner:EXECUTE
CREATE OR REPLACE FUNCTION aioqueue.pause_queue(queue_name text)
 RETURNS void
 LANGUAGE sql
 SET search_path TO 'pg_catalog', 'pg_temp'
BEGIN ATOMIC
 INSERT INTO aioqueue.flow_paused_queues (queue_name)
   VALUES (pause_queue.queue_name) ON CONFLICT DO NOTHING;
END
function aioqueue.resume_queue(text) security_definer=false acl=owner:EXECUTE
CREATE OR REPLACE FUNCTION aioqueue.resume_queue(queue_name text)
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
BEGIN
    DELETE FROM aioqueue.flow_paused_queues AS p WHERE p.queue_name = resume_queue.queue_name;
    PERFORM aioqueue.notify_workers('');
END;
$function$
function aioqueue.retry_job(bigint) security_definer=false acl=owner:EXECUTE
CREATE OR REPLACE FUNCTION aioqueue.retry_job(job_id bigint)
 RETURNS TABLE(id bigint, deduped boolean)
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
    FROM aioqueue.jobs AS j
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
        FROM aioqueue.jobs_history AS j
        WHERE j.id = retry_job.job_id AND j.state IN ('failed', 'cancelled')
        FOR UPDATE;
        v_moved := true;
    END IF;
    IF v_spec IS NULL THEN
        RETURN;
    END IF;
    IF v_last IS NOT NULL THEN
        SELECT j.id INTO v_id FROM aioqueue.jobs AS j
        WHERE j.id = v_last AND j.state IN ('pending', 'scheduled', 'running');
        IF v_id IS NOT NULL THEN
            RETURN QUERY SELECT v_id, true;
            RETURN;
        END IF;
    END IF;
    SELECT r.id, r.deduped INTO v_id, v_deduped
    FROM aioqueue.add_jobs(pg_catalog.jsonb_build_array(v_spec)) AS r;
    IF v_moved THEN
        UPDATE aioqueue.jobs_history AS j SET retried_by = v_id WHERE j.id = retry_job.job_id;
    ELSE
        UPDATE aioqueue.jobs AS j SET retried_by = v_id WHERE j.id = retry_job.job_id;
    END IF;
    RETURN QUERY SELECT v_id, v_deduped;
END;
$function$
function aioqueue.seal_group(bigint) security_definer=false acl=owner:EXECUTE
CREATE OR REPLACE FUNCTION aioqueue.seal_group(group_id bigint)
 RETURNS boolean
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
DECLARE
    v_group record;
BEGIN
    UPDATE aioqueue.job_groups AS g SET sealed = true
    WHERE g.id = seal_group.group_id
    RETURNING g.* INTO v_group;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF v_group.finished_at IS NULL
       AND v_group.completed + v_group.failed + v_group.cancelled >= v_group.total THEN
        PERFORM aioqueue.group_finish(v_group.id);
    END IF;
    RETURN true;
END;
$function$
function aioqueue.set_limits(text,jsonb) security_definer=false acl=owner:EXECUTE pg_write_all_data:EXECUTE
CREATE OR REPLACE FUNCTION aioqueue.set_limits(kind text, settings jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
        INSERT INTO aioqueue.flow_limits AS f (kind) VALUES (set_limits.kind)
        ON CONFLICT DO NOTHING;
        UPDATE aioqueue.flow_limits AS f SET
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
        DELETE FROM aioqueue.flow_key_rates AS b WHERE b.kind = set_limits.kind;
    END IF;
    PERFORM aioqueue.notify_workers('');  -- a raised limit or a resume: workers claim again
    RETURN v_row;
END;
$function$
index CREATE INDEX flow_key_rates_stale ON aioqueue.flow_key_rates USING btree (kind, tokens_at)
index CREATE INDEX job_deps_child ON aioqueue.job_deps USING btree (child_id)
index CREATE INDEX job_groups_finished ON aioqueue.job_groups USING btree (finished_at) WHERE (finished_at IS NOT NULL)
index CREATE INDEX jobs_claim ON aioqueue.jobs USING btree (kind, priority DESC, run_at, id) WHERE (state = ANY (ARRAY['pending'::aioqueue.job_state, 'scheduled'::aioqueue.job_state]))
index CREATE INDEX jobs_claim_key ON aioqueue.jobs USING btree (kind, concurrency_key, priority DESC, run_at, id) WHERE ((concurrency_key IS NOT NULL) AND (state = ANY (ARRAY['pending'::aioqueue.job_state, 'scheduled'::aioqueue.job_state])))
index CREATE INDEX jobs_finished ON aioqueue.jobs USING btree (finished_at) WHERE (state = ANY (ARRAY['completed'::aioqueue.job_state, 'cancelled'::aioqueue.job_state, 'failed'::aioqueue.job_state]))
index CREATE INDEX jobs_history_cancelled_finished_at_idx ON ONLY aioqueue.jobs_history_cancelled USING btree (finished_at)
index CREATE INDEX jobs_history_cancelled_id_idx ON ONLY aioqueue.jobs_history_cancelled USING btree (id)
index CREATE INDEX jobs_history_cancelled_id_idx1 ON ONLY aioqueue.jobs_history_cancelled USING btree (id) WHERE (has_children OR (pending_parents IS NOT NULL))
index CREATE INDEX jobs_history_cancelled_kind_unique_key_idx ON ONLY aioqueue.jobs_history_cancelled USING btree (kind, unique_key) WHERE (unique_key IS NOT NULL)
index CREATE INDEX jobs_history_cancelled_rescheduled_from_idx ON ONLY aioqueue.jobs_history_cancelled USING btree (rescheduled_from) WHERE (rescheduled_from IS NOT NULL)
index CREATE INDEX jobs_history_completed_finished_at_idx ON ONLY aioqueue.jobs_history_completed USING btree (finished_at)
index CREATE INDEX jobs_history_completed_id_idx ON ONLY aioqueue.jobs_history_completed USING btree (id)
index CREATE INDEX jobs_history_completed_id_idx1 ON ONLY aioqueue.jobs_history_completed USING btree (id) WHERE (has_children OR (pending_parents IS NOT NULL))
index CREATE INDEX jobs_history_completed_kind_unique_key_idx ON ONLY aioqueue.jobs_history_completed USING btree (kind, unique_key) WHERE (unique_key IS NOT NULL)
index CREATE INDEX jobs_history_completed_rescheduled_from_idx ON ONLY aioqueue.jobs_history_completed USING btree (rescheduled_from) WHERE (rescheduled_from IS NOT NULL)
index CREATE INDEX jobs_history_failed_finished_at_idx ON ONLY aioqueue.jobs_history_failed USING btree (finished_at)
index CREATE INDEX jobs_history_failed_id_idx ON ONLY aioqueue.jobs_history_failed USING btree (id)
index CREATE INDEX jobs_history_failed_id_idx1 ON ONLY aioqueue.jobs_history_failed USING btree (id) WHERE (has_children OR (pending_parents IS NOT NULL))
index CREATE INDEX jobs_history_failed_kind_unique_key_idx ON ONLY aioqueue.jobs_history_failed USING btree (kind, unique_key) WHERE (unique_key IS NOT NULL)
index CREATE INDEX jobs_history_failed_rescheduled_from_idx ON ONLY aioqueue.jobs_history_failed USING btree (rescheduled_from) WHERE (rescheduled_from IS NOT NULL)
index CREATE INDEX jobs_history_finished ON ONLY aioqueue.jobs_history USING btree (finished_at)
index CREATE INDEX jobs_history_id ON ONLY aioqueue.jobs_history USING btree (id)
index CREATE INDEX jobs_history_linked ON ONLY aioqueue.jobs_history USING btree (id) WHERE (has_children OR (pending_parents IS NOT NULL))
index CREATE INDEX jobs_history_rescheduled_from ON ONLY aioqueue.jobs_history USING btree (rescheduled_from) WHERE (rescheduled_from IS NOT NULL)
index CREATE INDEX jobs_history_unique_key ON ONLY aioqueue.jobs_history USING btree (kind, unique_key) WHERE (unique_key IS NOT NULL)
index CREATE INDEX jobs_queue_active ON aioqueue.jobs USING btree (queue_name, id) WHERE ((queue_name IS NOT NULL) AND (state = ANY (ARRAY['pending'::aioqueue.job_state, 'scheduled'::aioqueue.job_state, 'running'::aioqueue.job_state])))
index CREATE INDEX jobs_rescheduled_from ON aioqueue.jobs USING btree (rescheduled_from) WHERE (rescheduled_from IS NOT NULL)
index CREATE INDEX jobs_running ON aioqueue.jobs USING btree (id) WHERE (state = 'running'::aioqueue.job_state)
index CREATE INDEX jobs_unique_key_any ON aioqueue.jobs USING btree (kind, unique_key) WHERE (unique_key IS NOT NULL)
index CREATE UNIQUE INDEX crons_pkey ON aioqueue.crons USING btree (name)
index CREATE UNIQUE INDEX flow_key_rates_pkey ON aioqueue.flow_key_rates USING btree (kind, concurrency_key)
index CREATE UNIQUE INDEX flow_limits_pkey ON aioqueue.flow_limits USING btree (kind)
index CREATE UNIQUE INDEX flow_paused_queues_pkey ON aioqueue.flow_paused_queues USING btree (queue_name)
index CREATE UNIQUE INDEX job_deps_pkey ON aioqueue.job_deps USING btree (parent_id, child_id)
index CREATE UNIQUE INDEX job_groups_pkey ON aioqueue.job_groups USING btree (id)
index CREATE UNIQUE INDEX jobs_history_partitions_name_key ON aioqueue.jobs_history_partitions USING btree (name)
index CREATE UNIQUE INDEX jobs_history_partitions_pkey ON aioqueue.jobs_history_partitions USING btree (state, lower)
index CREATE UNIQUE INDEX jobs_history_settings_pkey ON aioqueue.jobs_history_settings USING btree (one)
index CREATE UNIQUE INDEX jobs_pkey ON aioqueue.jobs USING btree (id)
index CREATE UNIQUE INDEX jobs_unique_active ON aioqueue.jobs USING btree (kind, unique_key) WHERE ((unique_key IS NOT NULL) AND (state = ANY (ARRAY['pending'::aioqueue.job_state, 'scheduled'::aioqueue.job_state, 'running'::aioqueue.job_state])))
index CREATE UNIQUE INDEX migrations_pkey ON aioqueue.migrations USING btree (version)
index CREATE UNIQUE INDEX workers_pkey ON aioqueue.workers USING btree (id)
sequence job_groups_id_seq
sequence jobs_id_seq
table crons options=- rls=true force_rls=false acl=owner:DELETE owner:INSERT owner:REFERENCES owner:SELECT owner:TRIGGER owner:TRUNCATE owner:UPDATE
table flow_key_rates options=- rls=false force_rls=false acl=owner:DELETE owner:INSERT owner:REFERENCES owner:SELECT owner:TRIGGER owner:TRUNCATE owner:UPDATE pg_write_all_data:DELETE pg_write_all_data:INSERT pg_write_all_data:SELECT pg_write_all_data:UPDATE
table flow_limits options=- rls=false force_rls=false acl=owner:DELETE owner:INSERT owner:REFERENCES owner:SELECT owner:TRIGGER owner:TRUNCATE owner:UPDATE pg_write_all_data:INSERT pg_write_all_data:SELECT pg_write_all_data:UPDATE
table flow_paused_queues options=- rls=false force_rls=false acl=owner:DELETE owner:INSERT owner:REFERENCES owner:SELECT owner:TRIGGER owner:TRUNCATE owner:UPDATE pg_write_all_data:SELECT
table job_deps options=- rls=true force_rls=false acl=owner:DELETE owner:INSERT owner:REFERENCES owner:SELECT owner:TRIGGER owner:TRUNCATE owner:UPDATE
table job_groups options=- rls=true force_rls=false acl=owner:DELETE owner:INSERT owner:REFERENCES owner:SELECT owner:TRIGGER owner:TRUNCATE owner:UPDATE
table jobs options=fillfactor=70 rls=true force_rls=false acl=owner:DELETE owner:INSERT owner:REFERENCES owner:SELECT owner:TRIGGER owner:TRUNCATE owner:UPDATE
table jobs_history options=- rls=false force_rls=false acl=owner:DELETE owner:INSERT owner:REFERENCES owner:SELECT owner:TRIGGER owner:TRUNCATE owner:UPDATE pg_write_all_data:DELETE pg_write_all_data:INSERT pg_write_all_data:SELECT pg_write_all_data:UPDATE
table jobs_history_cancelled options=- rls=false force_rls=false acl=owner:DELETE owner:INSERT owner:REFERENCES owner:SELECT owner:TRIGGER owner:TRUNCATE owner:UPDATE
table jobs_history_completed options=- rls=false force_rls=false acl=owner:DELETE owner:INSERT owner:REFERENCES owner:SELECT owner:TRIGGER owner:TRUNCATE owner:UPDATE
table jobs_history_failed options=- rls=false force_rls=false acl=owner:DELETE owner:INSERT owner:REFERENCES owner:SELECT owner:TRIGGER owner:TRUNCATE owner:UPDATE
table jobs_history_partitions options=- rls=false force_rls=false acl=owner:DELETE owner:INSERT owner:REFERENCES owner:SELECT owner:TRIGGER owner:TRUNCATE owner:UPDATE pg_write_all_data:SELECT
table jobs_history_settings options=- rls=false force_rls=false acl=owner:DELETE owner:INSERT owner:REFERENCES owner:SELECT owner:TRIGGER owner:TRUNCATE owner:UPDATE pg_write_all_data:SELECT
table migrations options=- rls=false force_rls=false acl=owner:DELETE owner:INSERT owner:REFERENCES owner:SELECT owner:TRIGGER owner:TRUNCATE owner:UPDATE
table workers options=fillfactor=50 rls=true force_rls=false acl=owner:DELETE owner:INSERT owner:REFERENCES owner:SELECT owner:TRIGGER owner:TRUNCATE owner:UPDATE
trigger CREATE TRIGGER jobs_settled AFTER UPDATE OF state ON aioqueue.jobs FOR EACH ROW WHEN (((new.has_children OR (new.group_id IS NOT NULL)) AND (new.state = ANY (ARRAY['completed'::aioqueue.job_state, 'failed'::aioqueue.job_state, 'cancelled'::aioqueue.job_state])) AND (old.state <> ALL (ARRAY['completed'::aioqueue.job_state, 'failed'::aioqueue.job_state, 'cancelled'::aioqueue.job_state])))) EXECUTE FUNCTION aioqueue.jobs_settled()
trigger CREATE TRIGGER jobs_settled_tally AFTER UPDATE OF state ON aioqueue.jobs FOR EACH STATEMENT EXECUTE FUNCTION aioqueue.jobs_settled_tally()
type job_state waiting,pending,scheduled,running,completed,cancelled,failed
