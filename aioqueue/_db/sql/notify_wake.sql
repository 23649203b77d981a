-- notify_wake: wake workers: after the commit of enqueues that left it to their caller
-- (wake_after_commit), or after a stopping worker released jobs.
SELECT /*schema*/.notify_workers('')
