-- db_clock: the database's clock, in epoch seconds. Workers take every time from the database
-- (a host's clock may be off by hours): the notifier reads it on connect and as its liveness
-- probe to translate 't:<epoch>' hints, the scheduler to compute cron slots.
SELECT extract(epoch FROM clock_timestamp())::float8 AS epoch
