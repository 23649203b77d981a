-- flow_set_limits: $1 kind text, $2 settings (JSON object text; a key set to null clears it).
SELECT /*schema*/.set_limits($1::text, $2::text::jsonb)::text AS row
