-- 0013_group_prune: finished groups are forgotten with their jobs.
--
-- job_groups (0009) kept every group forever: a service running a group a second grew it by
-- 86,400 rows a day. The pruner now deletes the groups that finished longer ago than the
-- longest retention of their members' states (sql/group_prune.sql), through this partial index,
-- so the scan reads only finished groups in finishing order. Open and unfinished groups stay.
-- With many groups, building the index blocks group updates (the settling of group members)
-- while it runs; to avoid that, create it CONCURRENTLY beforehand under this name (same
-- columns and predicate), then apply the migration.

CREATE INDEX IF NOT EXISTS job_groups_finished ON /*schema*/.job_groups (finished_at)
    WHERE finished_at IS NOT NULL;

-- Roles that can already prune jobs (DELETE on jobs, e.g. the aq_worker of
-- examples/sql_least_privilege.sql) may prune groups too, so an upgrade does not stop them.
DO $do$
DECLARE
    v_role name;
BEGIN
    FOR v_role IN
        SELECT r.rolname FROM pg_catalog.pg_roles AS r
        WHERE r.rolname <> current_user AND NOT r.rolsuper
          AND r.rolname !~ '^pg_'  -- predefined roles (pg_write_all_data) have it already
          AND pg_catalog.has_table_privilege(r.oid, '/*schema*/.jobs', 'DELETE')
          AND pg_catalog.has_table_privilege(r.oid, '/*schema*/.job_groups', 'UPDATE')
    LOOP
        EXECUTE pg_catalog.format('GRANT DELETE ON /*schema*/.job_groups TO %I', v_role);
    END LOOP;
END;
$do$;
