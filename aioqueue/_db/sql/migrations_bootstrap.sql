-- migrations_bootstrap: the schema and its version table; run inside the migration lock.
CREATE SCHEMA IF NOT EXISTS /*schema*/;
CREATE TABLE IF NOT EXISTS /*schema*/.migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    breaking   boolean NOT NULL DEFAULT false,
    applied_at timestamptz NOT NULL DEFAULT now()
);
