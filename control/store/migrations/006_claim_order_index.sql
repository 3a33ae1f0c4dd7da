-- The claim reads due work of a shard's partition range in (priority, next_attempt_at) order.
-- Led by partition, the old index could not give that order across a range, so every claim read
-- and sorted the range's whole backlog (O(backlog) per claim: a 1,000,000-event backlog made each
-- claim of 500 scan about half a million entries). Led by the order, a claim reads about
-- 500 x (shards) entries and stops, whatever the backlog.
DROP INDEX IF EXISTS tasks_claimable;
CREATE INDEX tasks_claim_order ON tasks (priority, next_attempt_at, partition)
    WHERE status IN ('queued', 'failed') AND claim_epoch IS NULL;
