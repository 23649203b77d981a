-- history_prepare: create the leaf partitions of jobs_history up to now() + $1 seconds
-- (migration 0011). Returns the number created.
SELECT /*schema*/.history_prepare($1::float8) AS created
