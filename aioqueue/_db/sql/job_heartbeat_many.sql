-- job_heartbeat_many: extend the leases of all of one worker's running jobs in ONE statement.
-- Touches only lease_expires_at (not indexed), so the update stays HOT.
-- $1 ids bigint[], $2 lease_tokens bigint[], $3 lease_seconds float8, $4 now timestamptz|NULL.
-- Returns the jobs still ours, with cancel_requested (supersede); any id missing lost its lease.
UPDATE /*schema*/.jobs AS j
SET lease_expires_at = coalesce($4::timestamptz, now()) + make_interval(secs => $3::float8)
FROM unnest($1::bigint[], $2::bigint[]) AS u(id, lease_token)
WHERE j.id = u.id
  AND j.state = 'running'
  AND j.lease_token = u.lease_token
RETURNING j.id, j.cancel_requested
