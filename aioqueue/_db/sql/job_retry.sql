-- job_retry: re-run a failed or cancelled job as a new pending job (lineage: rescheduled_from).
-- Goes through add_jobs, so an active job with the same unique_key is returned instead.
-- $1 id bigint. No row: the job is not failed/cancelled (or does not exist).
SELECT r.id, r.deduped
FROM /*schema*/.jobs AS j,
     LATERAL /*schema*/.add_jobs(jsonb_build_array(jsonb_build_object(
        'kind', j.kind,
        'payload', j.payload,
        'priority', j.priority,
        'max_attempts', j.max_attempts,
        'queue_name', j.queue_name,
        'flags', to_jsonb(j.flags),
        'unique_key', j.unique_key,
        'rescheduled_from', j.id))) AS r
WHERE j.id = $1::bigint
  AND j.state IN ('failed', 'cancelled')
