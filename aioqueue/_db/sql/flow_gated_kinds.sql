-- flow_gated_kinds: which of the kinds $1 (text[]) have a limit, a rate or a pause: the worker
-- claims those through claim_gated.sql (the ordinary claim skips them).
SELECT coalesce(array_agg(f.kind ORDER BY f.kind), '{}') AS kinds
FROM /*schema*/.flow_limits AS f
WHERE f.kind = ANY ($1::text[]) AND f.gated
