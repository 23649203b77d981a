-- 0014_keys_of_waiting_jobs: a job enqueued with depends_on and a concurrency_key kept its key.
--
-- add_jobs (0010, now add_jobs_before_history since 0011) writes concurrency_key in a second
-- statement, only on jobs still waiting to run: it checked for 'pending' and 'scheduled' and
-- missed 'waiting' (0009: a job with unfinished parents), so such a job was written without its
-- key and, once its parents completed, ran outside its key_concurrency and key_rate_limit.
-- The function is rewritten from its definition read back from the catalog (as 0010 and 0012
-- did) with that one test widened; jobs already written that way are not repaired (their key
-- is not stored anywhere).
DO $do$
DECLARE
    v_def text := pg_catalog.pg_get_functiondef(
        '/*schema*/.add_jobs_before_history(jsonb, timestamptz)'::pg_catalog.regprocedure);
    v_old text := 'AND j.state IN (''pending'', ''scheduled'')';
BEGIN
    IF pg_catalog.strpos(v_def, v_old) = 0 THEN
        RAISE EXCEPTION 'aioqueue: add_jobs_before_history is not as 0010 wrote it';
    END IF;
    EXECUTE pg_catalog.replace(
        v_def, v_old, 'AND j.state IN (''waiting'', ''pending'', ''scheduled'')');
END;
$do$;
