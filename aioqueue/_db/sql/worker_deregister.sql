-- worker_deregister: delete this worker's row when it stops. $1 worker_id text.
DELETE FROM /*schema*/.workers AS w
WHERE w.id = $1::text
