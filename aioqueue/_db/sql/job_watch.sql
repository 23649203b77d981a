-- job_watch: Queue.wait marks a job that is not final yet as waited for, so the statement that
-- finishes it sends the 'f' notification (job_complete_many, job_finish_many). Returns a row
-- only if the job was marked; none if it is final or missing, which the caller then reads with
-- a new statement: if this UPDATE waited for a finishing transaction's row lock, its own
-- snapshot is older than that commit.
-- $1 id bigint.
UPDATE /*schema*/.jobs SET waited = true
WHERE id = $1::bigint AND state IN ('waiting', 'pending', 'scheduled', 'running')
RETURNING id
