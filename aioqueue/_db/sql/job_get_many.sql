-- job_get_many: states of several jobs (Queue.wait reads whether its job is final). $1 ids bigint[]
SELECT id, state::text AS state FROM /*schema*/.jobs WHERE id = ANY($1::bigint[])
