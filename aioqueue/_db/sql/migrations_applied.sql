-- migrations_applied: versions already applied ([] when the version table does not exist yet).
-- no parameters
SELECT coalesce(
    (SELECT array_agg(m.version ORDER BY m.version) FROM /*schema*/.migrations AS m),
    '{}'::integer[]) AS versions
