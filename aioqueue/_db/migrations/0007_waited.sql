-- 0007_waited: jobs.waited marks a job that a Queue.wait() caller is waiting for, so finishing
-- a job sends the 'f' notification only when someone waits for it. Before, every completion
-- batch sent one: a NOTIFY takes a database-wide lock held through the commit's WAL flush, so
-- the completions of all workers committed one at a time, and every listening worker was woken
-- for each batch (4 worker processes drained 10 % faster without it, in each of three A/B pairs).
-- Not indexed and not in any index predicate, so marking a job is a HOT update. A constant
-- default: the table is not rewritten.
ALTER TABLE /*schema*/.jobs ADD COLUMN waited boolean NOT NULL DEFAULT false;
