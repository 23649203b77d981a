-- 0006_limits_as_domains: the jobs table's six CHECK constraints move onto domains, the
-- column types. PostgreSQL reads a table's CHECK constraints back from their stored text on
-- every INSERT and UPDATE statement (pg_strtok was a quarter of a single enqueue's server CPU);
-- a domain's checks are read once per session (its type cache). Same limits, and the same
-- constraint names in the errors (SQLSTATE 23514).
-- Each column first takes a domain without a constraint (binary compatible: no table rewrite;
-- the four indexes on kind, queue_name and unique_key are rebuilt), then each domain gets its
-- check, which reads the table once. Writes wait meanwhile: 2.2 s for a million jobs.

CREATE DOMAIN /*schema*/.job_kind AS text;
CREATE DOMAIN /*schema*/.job_queue_name AS text;
CREATE DOMAIN /*schema*/.job_unique_key AS text;
CREATE DOMAIN /*schema*/.job_flags AS text[];
CREATE DOMAIN /*schema*/.job_max_attempts AS integer;
CREATE DOMAIN /*schema*/.job_attempts AS integer;

ALTER TABLE /*schema*/.jobs
    DROP CONSTRAINT jobs_kind_length,
    DROP CONSTRAINT jobs_queue_name_length,
    DROP CONSTRAINT jobs_unique_key_length,
    DROP CONSTRAINT jobs_flags_count,
    DROP CONSTRAINT jobs_max_attempts_positive,
    DROP CONSTRAINT jobs_attempts_non_negative,
    ALTER COLUMN kind TYPE /*schema*/.job_kind,
    ALTER COLUMN queue_name TYPE /*schema*/.job_queue_name,
    ALTER COLUMN unique_key TYPE /*schema*/.job_unique_key,
    ALTER COLUMN flags TYPE /*schema*/.job_flags,
    ALTER COLUMN max_attempts TYPE /*schema*/.job_max_attempts,
    ALTER COLUMN attempts TYPE /*schema*/.job_attempts;

ALTER DOMAIN /*schema*/.job_kind
    ADD CONSTRAINT jobs_kind_length CHECK (octet_length(VALUE) BETWEEN 1 AND 128);
ALTER DOMAIN /*schema*/.job_queue_name
    ADD CONSTRAINT jobs_queue_name_length CHECK (octet_length(VALUE) BETWEEN 1 AND 128);
ALTER DOMAIN /*schema*/.job_unique_key
    ADD CONSTRAINT jobs_unique_key_length CHECK (octet_length(VALUE) BETWEEN 1 AND 512);
ALTER DOMAIN /*schema*/.job_flags
    ADD CONSTRAINT jobs_flags_count CHECK (cardinality(VALUE) <= 32);
ALTER DOMAIN /*schema*/.job_max_attempts
    ADD CONSTRAINT jobs_max_attempts_positive CHECK (VALUE >= 1);
ALTER DOMAIN /*schema*/.job_attempts
    ADD CONSTRAINT jobs_attempts_non_negative CHECK (VALUE >= 0);
