-- claim_gated: the claim for kinds with a limit, a rate or a pause (migration 0010's
-- claim_gated function: locks each kind's flow_limits row before counting). Same parameters
-- and columns as job_claim.sql.
SELECT *
FROM /*schema*/.claim_gated($1::text[], $2::integer[], $3::text[], $4::integer, $5::text,
                            $6::float8, $7::timestamptz)
