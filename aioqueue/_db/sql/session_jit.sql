-- session_jit: set jit for this session (aioqueue's own connections), or for the current
-- transaction (claims behind a transaction pooler). A hot statement's plan whose estimated cost
-- passes jit_above_cost (the claim's generic plan on a big backlog) would be JIT-compiled on
-- every run: milliseconds of compiling for well under one of work.
-- $1 value text ('off' | 'on')
-- $2 local boolean (true: for the current transaction only)
SELECT set_config('jit', $1::text, $2::boolean)
