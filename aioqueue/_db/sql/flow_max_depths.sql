-- flow_max_depths: every kind with a max_depth (the enqueue's backpressure cache, _flow.py).
SELECT f.kind, f.max_depth FROM /*schema*/.flow_limits AS f WHERE f.max_depth IS NOT NULL
