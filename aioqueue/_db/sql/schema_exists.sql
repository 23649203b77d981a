-- schema_exists: whether the version table of the schema exists.
-- $1 qualified name text, e.g. 'aioqueue.migrations'
SELECT to_regclass($1::text) IS NOT NULL AS present
