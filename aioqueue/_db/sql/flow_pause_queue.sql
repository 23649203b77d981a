-- flow_pause_queue: $1 queue_name text: its jobs are not claimed until resumed.
SELECT /*schema*/.pause_queue($1::text)
