-- history_prepare: create the leaf partitions of jobs_history up to $1 seconds (at least two
-- partition widths) after $2 (NULL: now()) (migration 0011). Returns the number created.
SELECT /*schema*/.history_prepare($1::float8, $2::timestamptz) AS created
