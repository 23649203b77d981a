-- job_get_many: states of several jobs (Queue.wait reads whether its job is final). $1 ids bigint[]
-- (jobs or jobs_history: one statement, one snapshot, so a job moving is seen once)
SELECT id, state::text AS state FROM (SELECT * FROM /*schema*/.jobs
                                      UNION ALL SELECT * FROM /*schema*/.jobs_history) AS j
WHERE id = ANY($1::bigint[])
