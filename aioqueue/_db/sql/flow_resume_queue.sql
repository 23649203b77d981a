-- flow_resume_queue: $1 queue_name text.
SELECT /*schema*/.resume_queue($1::text)
