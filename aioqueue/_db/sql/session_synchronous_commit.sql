-- session_synchronous_commit: set synchronous_commit for this session, or for the current
-- transaction (claims only).
-- $1 value text ('off' | 'on' | ...)
-- $2 local boolean (true: for the current transaction only)
SELECT set_config('synchronous_commit', $1::text, $2::boolean)
