-- 0011: reserved for the history table (issue 22, branch history). This placeholder only keeps
-- the numbering free of gaps on the branch that added 0012; the history branch's 0011 replaces
-- it when both are merged.
SELECT 1;
