-- cron_enqueue: enqueue one cron slot exactly once (see migration 0002).
-- $1 name text, $2 slot timestamptz, $3 spec text (a JSON job spec), $4 now timestamptz|NULL.
-- Returns the job id, or NULL if the slot was enqueued already.
SELECT /*schema*/.cron_enqueue($1::text, $2::timestamptz, $3::text::jsonb, $4::timestamptz)
