-- session_plan_cache_mode: set plan_cache_mode for this session (claims only).
-- $1 value text ('force_generic_plan' | 'auto' | ...)
-- $2 local boolean (true: for the current transaction only)
SELECT set_config('plan_cache_mode', $1::text, $2::boolean)
