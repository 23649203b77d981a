-- schema_drop: remove the schema and everything in it (demo reset, tests).
DROP SCHEMA IF EXISTS /*schema*/ CASCADE
