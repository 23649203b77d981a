-- migrations_record: mark one migration applied.
-- $1 version integer, $2 name text, $3 breaking boolean
INSERT INTO /*schema*/.migrations (version, name, breaking) VALUES ($1, $2, $3)
