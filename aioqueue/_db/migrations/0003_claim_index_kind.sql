-- 0003_claim_index_kind: the claim index carries the kind as its last key column, so a claim
-- skips due jobs of kinds the worker has no handler for inside the index (an index condition)
-- instead of fetching each of their rows from the heap. A backlog of an unregistered kind
-- ahead of the worker's jobs used to slow claims 6x (RELIABILITY E10).
-- On a big table this rebuild blocks writes while it runs; to avoid that, create the new index
-- CONCURRENTLY under another name beforehand, then apply the migration.

DROP INDEX /*schema*/.jobs_claim;

CREATE INDEX jobs_claim
    ON /*schema*/.jobs (priority DESC, run_at, id, kind)
    WHERE state IN ('pending', 'scheduled');
