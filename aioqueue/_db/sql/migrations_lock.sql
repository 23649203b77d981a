-- migrations_lock: serialise migrations of one schema across processes (transaction-scoped).
-- $1 schema text
SELECT pg_advisory_xact_lock(hashtext('aioqueue.migrate'), hashtext($1::text))
