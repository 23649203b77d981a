-- 0004_claim_by_kind: the claim index leads with the kind, so a claim reads each of its kinds'
-- due jobs as one index range (job_claim.sql) and never walks jobs of kinds it has no handler
-- for. With the kind last (0003), 100k due jobs of an unregistered kind ahead of the worker's
-- jobs were still walked entry by entry on every claim: registered jobs drained at 0.55x the
-- clean rate (RELIABILITY E10); this makes it ~1x. Queries without a kind (stats) use
-- PostgreSQL 18's skip scan or the table.
-- The rebuild blocks enqueues and claims while it runs: 2.5 s for a million waiting jobs
-- (finished jobs are not in this partial index).

DROP INDEX /*schema*/.jobs_claim;

CREATE INDEX jobs_claim
    ON /*schema*/.jobs (kind, priority DESC, run_at, id)
    WHERE state IN ('pending', 'scheduled');
