-- history_drop_expired: drop the history partitions of state $1 whose rows all finished more than
-- $2 seconds before $4 (NULL: now()), at most $3 per call (migration 0011). Returns the number
-- of rows dropped.
SELECT /*schema*/.history_drop_expired($1::text, $2::float8, $3::integer, $4::timestamptz)
    AS dropped
