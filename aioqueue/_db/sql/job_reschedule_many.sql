-- job_reschedule_many: move waiting jobs (pending/scheduled) to a new run_at / priority /
-- attempts count. $1 ids bigint[], $2 run_at timestamptz|NULL, $3 priority smallint|NULL,
-- $4 attempts integer|NULL. Returns the ids changed (others were not waiting).
UPDATE /*schema*/.jobs AS j
SET run_at = coalesce($2::timestamptz, j.run_at),
    priority = coalesce($3::smallint, j.priority),
    attempts = coalesce($4::integer, j.attempts),
    state = CASE WHEN coalesce($2::timestamptz, j.run_at) > now()
                 THEN 'scheduled'::/*schema*/.job_state
                 ELSE 'pending'::/*schema*/.job_state END
WHERE j.id = ANY($1::bigint[])
  AND j.state IN ('pending', 'scheduled')
RETURNING j.id
