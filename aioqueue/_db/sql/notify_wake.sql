-- notify_wake: wake workers (e.g. after jobs were released by a stopping worker).
-- Skipped while the notification queue is over half full. $1 payload text.
SELECT pg_notify(/*channel*/, $1::text)
WHERE pg_notification_queue_usage() <= 0.5
