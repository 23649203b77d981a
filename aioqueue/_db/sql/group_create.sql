-- group_create: a new, open (unsealed) group. $1 on_complete text|NULL: the callback's spec as
-- add_jobs takes it (JSON object). Members join through add_jobs' group_id key.
INSERT INTO /*schema*/.job_groups (on_complete)
VALUES ($1::text::jsonb)
RETURNING id
