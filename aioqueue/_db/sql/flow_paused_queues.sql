-- flow_paused_queues: the paused queue names.
SELECT q.queue_name, q.paused_at FROM /*schema*/.flow_paused_queues AS q ORDER BY q.queue_name
