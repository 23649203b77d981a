-- worker_prune: delete the rows of workers not seen for $1 seconds (they crashed, or were
-- killed, without deleting their row). $1 older_than_seconds float8, $2 now timestamptz|NULL.
-- Safe on N workers at once. Returns the number of rows deleted.
WITH deleted AS (
    DELETE FROM /*schema*/.workers AS w
    WHERE w.last_seen_at < coalesce($2::timestamptz, now()) - make_interval(secs => $1::float8)
    RETURNING 1
)
SELECT count(*)::integer AS deleted FROM deleted
