-- session_synchronous_commit: set synchronous_commit for this session (claims only).
-- $1 value text ('off' | 'on' | ...)
SELECT set_config('synchronous_commit', $1::text, false)
