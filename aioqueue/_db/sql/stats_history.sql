-- stats_history: jobs finished per minute over the last $1 minutes, oldest minute first, with
-- empty minutes included (each minute is one range scan of the jobs_finished index,
-- and of the history's finished_at index in the partitions of that minute: migration 0011).
WITH minutes AS (
    SELECT generate_series(
        date_bin('1 minute', now(), timestamptz '2000-01-01')
            - make_interval(mins => $1::integer - 1),
        date_bin('1 minute', now(), timestamptz '2000-01-01'),
        interval '1 minute') AS minute
)
SELECT m.minute,
       count(j.id) FILTER (WHERE j.state = 'completed')::bigint AS completed,
       count(j.id) FILTER (WHERE j.state = 'failed')::bigint AS failed
FROM minutes AS m
LEFT JOIN (SELECT * FROM /*schema*/.jobs UNION ALL SELECT * FROM /*schema*/.jobs_history) AS j
    ON j.state IN ('completed', 'cancelled', 'failed')
   AND j.finished_at >= m.minute AND j.finished_at < m.minute + interval '1 minute'
GROUP BY m.minute
ORDER BY m.minute
