-- job_retry: re-run a failed or cancelled job as a new pending job (lineage: rescheduled_from),
-- through retry_job (migration 0008): idempotent, a job's active retry is returned (deduped)
-- instead of a second one, and so is an active job with the same unique_key.
-- $1 id bigint. No row: the job is not failed/cancelled (or does not exist).
SELECT r.id, r.deduped
FROM /*schema*/.retry_job($1::bigint) AS r
