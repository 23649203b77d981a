-- session_default_transaction_read_only: make every transaction of this session read-only (the
-- reader pool of read_dsn=): a write sent through it fails instead of landing on that server.
-- $1 value text ('on' | 'off')
SELECT set_config('default_transaction_read_only', $1::text, false)
