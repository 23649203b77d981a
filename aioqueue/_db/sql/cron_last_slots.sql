-- cron_last_slots: the last slot enqueued per cron name. $1 names text[].
SELECT name, last_slot FROM /*schema*/.crons WHERE name = ANY($1::text[])
