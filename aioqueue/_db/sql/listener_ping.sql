-- listener_ping: liveness probe of the dedicated LISTEN connection.
SELECT 1
