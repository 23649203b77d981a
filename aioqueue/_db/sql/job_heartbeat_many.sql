-- job_heartbeat_many: extend the leases of all of one worker's running jobs in ONE statement.
-- Touches only lease_expires_at (not indexed), so the update stays HOT.
-- $1 ids bigint[], $2 lease_tokens bigint[], $3 lease_seconds float8, $4 now timestamptz|NULL.
-- Returns the jobs still ours, with cancel_requested (supersede); any id missing lost its lease.
-- `(j.state = 'running') IS TRUE` on purpose: a plain `j.state = 'running'` lets the planner
-- read the jobs through jobs_running, and when its statistics say few rows run (after an
-- ANALYZE of a fresh backlog) it hashes every worker's running jobs for each batch: a batch
-- of 5 among 4,000 running took 1.7-2.8 ms instead of 0.2. This way each id is one
-- primary-key probe (tests/test_plans.py guards it).
UPDATE /*schema*/.jobs AS j
SET lease_expires_at = coalesce($4::timestamptz, now()) + make_interval(secs => $3::float8)
FROM unnest($1::bigint[], $2::bigint[]) AS u(id, lease_token)
WHERE j.id = u.id
  AND (j.state = 'running') IS TRUE
  AND j.lease_token = u.lease_token
RETURNING j.id, j.cancel_requested
