-- reader_read_only: make every transaction of this session read-only (the reader pool of
-- read_dsn=): a write sent through it fails instead of landing on that server, even when
-- read_dsn names the primary.
SELECT set_config('default_transaction_read_only', 'on', false)
