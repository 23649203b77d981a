-- job_outcomes_settled: which of these outcomes are already in the table, written under their
-- own lease. Asked after a flush whose fate was unknown (the connection broke or the write timed
-- out while its commit may have gone through) and whose resend the fence then rejected: a job
-- that ended in the outcome's state still carrying that claim's token was settled by that write.
-- The row may have moved to jobs_history since (migration 0011): both are read.
-- $1 ids bigint[], $2 lease_tokens bigint[], $3 states text[].
SELECT j.id
FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS u(id, lease_token, state)
JOIN (SELECT * FROM /*schema*/.jobs
      UNION ALL SELECT * FROM /*schema*/.jobs_history) AS j ON j.id = u.id
WHERE j.lease_token = u.lease_token
  AND j.state::text = u.state
  AND j.state <> 'running'
