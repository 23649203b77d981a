-- flow_declare: the limits declared on a task ($2, JSON object text), written only when the
-- kind $1 has no flow settings yet: a setting made at run time survives worker restarts.
SELECT /*schema*/.set_limits($1::text, $2::text::jsonb)::text AS row
WHERE NOT EXISTS (SELECT 1 FROM /*schema*/.flow_limits AS f WHERE f.kind = $1::text)
