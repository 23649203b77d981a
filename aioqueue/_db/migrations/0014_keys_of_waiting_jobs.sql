-- 0014_keys_of_waiting_jobs: a job enqueued with depends_on and a concurrency_key kept its key.
--
-- add_jobs (0010, now add_jobs_before_history since 0011) writes concurrency_key in a second
-- statement, only on jobs still waiting to run: it checked for 'pending' and 'scheduled' and
-- missed 'waiting' (0009: a job with unfinished parents), so such a job was written without its
-- key and, once its parents completed, ran outside its key_concurrency and key_rate_limit.
-- The function is replaced with that one test widened; jobs already written that way are not
-- repaired (their key is not stored anywhere).

CREATE OR REPLACE FUNCTION /*schema*/.add_jobs_before_history(
    specs jsonb, now timestamptz DEFAULT NULL)
RETURNS TABLE (ord integer, id bigint, deduped boolean)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
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
    FROM /*schema*/.add_jobs_without_keys(add_jobs_before_history.specs, add_jobs_before_history.now) AS a;
    IF v_keyed THEN  -- a later statement: it sees the rows just written
        UPDATE /*schema*/.jobs AS j
        SET concurrency_key = s.value ->> 'concurrency_key'
        FROM unnest(v_ords, v_ids, v_dd) AS r(o, i, d)
        JOIN jsonb_array_elements(add_jobs_before_history.specs) WITH ORDINALITY AS s ON s.ordinality = r.o
        WHERE j.id = r.i
          AND (s.value ->> 'concurrency_key') IS NOT NULL
          AND j.state IN ('waiting', 'pending', 'scheduled')  -- 0014: waiting too
          AND (NOT r.d
               OR coalesce(s.value ->> 'on_conflict', 'ignore')
                  IN ('replace', 'preserve_run_at', 'supersede'));
    END IF;
    RETURN QUERY
    SELECT r.o, r.i, r.d FROM unnest(v_ords, v_ids, v_dd) AS r(o, i, d) ORDER BY r.o;
END;
$fn$;
