-- Hot targets spread over several shards (engine/policy/spread.py).

-- name: hot_waiting
-- Unclaimed tasks of one target ($2: the endpoint, NULL for direct destinations) waiting in each
-- helper partition ($1), among the $3 most urgent unclaimed tasks of all (the claim order's index:
-- a bounded scan, whatever the backlog; no index finds unclaimed tasks by partition, and adding
-- one would cost every ingest). Tasks moved to a helper were the most urgent of the home's
-- backlog, so they are found there while they wait; under a deep backlog of many hot targets the
-- count can fall short, and a helper is then given more than its share (it delivers it later).
SELECT w.partition, count(*)::int AS n FROM (
    SELECT t.partition, t.endpoint_id FROM tasks t
    WHERE t.status IN ('queued', 'failed') AND t.claim_epoch IS NULL
    ORDER BY t.priority, t.next_attempt_at
    LIMIT $3) w
WHERE w.partition = ANY($1::int[]) AND (w.endpoint_id = $2::uuid OR ($2::uuid IS NULL AND w.endpoint_id IS NULL))
GROUP BY w.partition;

-- name: spread_tasks
-- Fenced by the home shard's lease ($1 slot, $2 epoch): move up to cardinality($6) unclaimed due
-- tasks of the target ($4 endpoint, NULL: the direct destinations) from its home partition ($3) to
-- helper partitions, the i-th picked task to $6[i]. Locked rows (being claimed) are skipped, and a
-- claim committed meanwhile leaves the row out (claim_epoch), so no task is both claimed and moved.
-- A FIFO endpoint is never spread (its order is kept by one shard): the shard's cached config says
-- so, and so does this statement, for an endpoint made FIFO since the shard last read it.
WITH lease AS (
    SELECT 1 FROM shard_leases WHERE slot = $1 AND epoch = $2 AND expires_at > now()
      AND NOT EXISTS (SELECT 1 FROM endpoints ep WHERE ep.id = $4::uuid AND ep.fifo)
), picked AS (
    SELECT x.id, row_number() OVER () AS n FROM (
        SELECT t.id FROM tasks t
        WHERE EXISTS (SELECT 1 FROM lease)
          AND t.partition = $3 AND t.status IN ('queued', 'failed') AND t.claim_epoch IS NULL
          AND (t.endpoint_id = $4::uuid OR ($4::uuid IS NULL AND t.endpoint_id IS NULL))
          AND t.next_attempt_at <= now() + make_interval(secs => $5)
        ORDER BY t.priority, t.next_attempt_at
        LIMIT cardinality($6::int[])
        FOR UPDATE OF t SKIP LOCKED
    ) x
)
UPDATE tasks t SET partition = ($6::int[])[picked.n], updated_at = now()
FROM picked
WHERE t.id = picked.id
RETURNING t.partition;

-- name: circuit_states
-- Breakers of spread endpoints as their shards persisted them (set_circuit_state): one opened by
-- any shard sending the endpoint opens the others.
SELECT id, circuit_state, circuit_opened_at FROM endpoints WHERE id = ANY($1::uuid[]);
