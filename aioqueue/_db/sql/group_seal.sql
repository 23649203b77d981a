-- group_seal: seal a group (no more members); when every member has finished already, the
-- callback is enqueued now. $1 id bigint. Returns false if there is no such group.
SELECT /*schema*/.seal_group($1::bigint) AS found
