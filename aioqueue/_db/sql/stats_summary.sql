-- stats_summary: number of due jobs and the oldest one, completions in the last $1 seconds, notification-queue usage
-- and the oldest open transaction in this database (both pin or block the queue when high).
SELECT
    (SELECT min(j.run_at) FROM /*schema*/.jobs AS j
     WHERE j.state IN ('pending', 'scheduled') AND j.run_at <= now()) AS oldest_due,
    (SELECT count(*) FROM /*schema*/.jobs AS j
     WHERE j.state IN ('pending', 'scheduled') AND j.run_at <= now())::bigint AS due,
    (SELECT count(*) FROM (SELECT * FROM /*schema*/.jobs
                           UNION ALL SELECT * FROM /*schema*/.jobs_history) AS j
     WHERE j.state = 'completed'
       AND j.finished_at > now() - make_interval(secs => $1::float8))::bigint AS recent_completed,
    pg_notification_queue_usage() AS notify_queue_usage,
    (SELECT extract(epoch FROM max(now() - a.xact_start)) FROM pg_stat_activity AS a
     WHERE a.datname = current_database() AND a.xact_start IS NOT NULL
       AND a.pid <> pg_backend_pid()) AS oldest_xact_seconds
