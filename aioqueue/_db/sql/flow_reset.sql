-- flow_reset: forget every flow setting of kind $1 (the next worker start declares its own).
DELETE FROM /*schema*/.flow_limits AS f WHERE f.kind = $1::text
RETURNING f.kind
