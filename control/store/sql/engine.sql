-- name: acquire_lease
-- Take a slot when it is free, expired, or ours (a restarted shard of the same supervisor run).
INSERT INTO shard_leases (slot, lo, hi, owner, epoch, expires_at)
VALUES ($1, $2, $3, $4, nextval('lease_epoch_seq'), now() + make_interval(secs => $5))
ON CONFLICT (slot) DO UPDATE
    SET owner = EXCLUDED.owner, epoch = EXCLUDED.epoch, expires_at = EXCLUDED.expires_at, renewed_at = now()
    WHERE shard_leases.expires_at < now() OR shard_leases.owner = EXCLUDED.owner
RETURNING epoch;

-- name: overlapping_live_leases
SELECT slot, owner FROM shard_leases
WHERE slot <> $1 AND lo < $3 AND hi > $2 AND expires_at > now();

-- name: drop_overlapping_leases
DELETE FROM shard_leases WHERE slot <> $1 AND lo < $3 AND hi > $2 AND expires_at <= now();

-- name: renew_lease
UPDATE shard_leases SET expires_at = now() + make_interval(secs => $3), renewed_at = now()
WHERE slot = $1 AND epoch = $2
RETURNING epoch;

-- name: release_lease
UPDATE shard_leases SET expires_at = now() WHERE slot = $1 AND epoch = $2;

-- name: reset_stale_claims
-- Work held by an earlier owner of this range goes back to the queue; in flight then = at least once.
UPDATE tasks SET claim_epoch = NULL,
    status = CASE WHEN status = 'delivering' THEN CASE WHEN attempts = 0 THEN 'queued' ELSE 'failed' END
                  ELSE status END,
    updated_at = now()
WHERE partition >= $1 AND partition < $2 AND claim_epoch IS NOT NULL AND claim_epoch <> $3;

-- name: claim_tasks
WITH lease AS (
    SELECT 1 FROM shard_leases WHERE slot = $1 AND epoch = $2 AND expires_at > now()
), due AS (
    SELECT t.id FROM tasks t
    WHERE EXISTS (SELECT 1 FROM lease)
      AND t.status IN ('queued', 'failed') AND t.claim_epoch IS NULL
      AND t.partition >= $3 AND t.partition < $4
      AND t.next_attempt_at <= now() + make_interval(secs => $5)
      AND (t.endpoint_id IS NULL OR NOT EXISTS (
            SELECT 1 FROM endpoints ep
            WHERE ep.id = t.endpoint_id AND (ep.status = 'paused' OR ep.delivery_mode <> 'push' OR ep.fifo)))
    ORDER BY t.priority, t.next_attempt_at
    LIMIT $6
    FOR UPDATE OF t SKIP LOCKED
)
UPDATE tasks t SET claim_epoch = $2,
    status = CASE WHEN t.next_attempt_at <= now() THEN 'delivering' ELSE t.status END,
    updated_at = now()
FROM due, events e, clients c
WHERE t.id = due.id AND e.id = t.event_id AND c.id = t.client_id
RETURNING t.id, t.event_id, t.client_id, t.endpoint_id, t.partition, t.seq, t.attempts, t.max_attempts,
          t.priority, t.next_attempt_at, e.destination, e.event_type, e.payload, e.headers, e.project_id,
          c.signing_secret AS client_secret;

-- name: claim_fifo_tasks
-- FIFO endpoints: all their pending work in creation order, whatever its due time, so that a
-- shard's FIFO gate always sees a key's head before the tasks behind it.
WITH lease AS (
    SELECT 1 FROM shard_leases WHERE slot = $1 AND epoch = $2 AND expires_at > now()
), due AS (
    SELECT t.id FROM endpoints ep
    JOIN tasks t ON t.endpoint_id = ep.id
    WHERE EXISTS (SELECT 1 FROM lease)
      AND ep.fifo AND ep.deleted_at IS NULL AND ep.status = 'active' AND ep.delivery_mode = 'push'
      AND ep.partition >= $3 AND ep.partition < $4
      AND t.status IN ('queued', 'failed') AND t.claim_epoch IS NULL
    ORDER BY t.seq
    LIMIT $5
    FOR UPDATE OF t SKIP LOCKED
)
UPDATE tasks t SET claim_epoch = $2, updated_at = now()
FROM due, events e, clients c
WHERE t.id = due.id AND e.id = t.event_id AND c.id = t.client_id
RETURNING t.id, t.event_id, t.client_id, t.endpoint_id, t.partition, t.seq, t.attempts, t.max_attempts,
          t.priority, t.next_attempt_at, e.destination, e.event_type, e.payload, e.headers, e.project_id,
          c.signing_secret AS client_secret;

-- name: record_outcomes
-- Fenced: a shard whose claim was taken over changes nothing.
UPDATE tasks t SET status = u.status, attempts = u.attempts, next_attempt_at = u.next_at,
    claim_epoch = u.keep_epoch, last_error = u.err, delivered_at = u.delivered_at, updated_at = now()
FROM unnest($1::uuid[], $2::text[], $3::int[], $4::timestamptz[], $5::bigint[], $6::text[],
            $7::timestamptz[]) AS u(id, status, attempts, next_at, keep_epoch, err, delivered_at)
WHERE t.id = u.id AND t.claim_epoch = $8
RETURNING t.id, t.event_id;

-- name: rollup_events
UPDATE events e SET status = r.status, attempts = r.attempts, delivered_at = r.delivered_at, updated_at = now()
FROM (
    SELECT event_id,
           CASE WHEN bool_and(status = 'delivered') THEN 'delivered'
                WHEN bool_or(status = 'delivering') THEN 'delivering'
                WHEN bool_or(status = 'failed') THEN 'failed'
                WHEN bool_or(status = 'queued') THEN 'queued'
                ELSE 'dead' END AS status,
           sum(attempts)::int AS attempts,
           max(delivered_at) AS delivered_at
    FROM tasks WHERE event_id = ANY($1::uuid[])
    GROUP BY event_id
) r
WHERE e.id = r.event_id;

-- name: release_tasks
UPDATE tasks SET claim_epoch = NULL,
    status = CASE WHEN status = 'delivering' THEN CASE WHEN attempts = 0 THEN 'queued' ELSE 'failed' END
                  ELSE status END,
    updated_at = now()
WHERE id = ANY($1::uuid[]) AND claim_epoch = $2;

-- name: release_orphans
-- Claims this epoch made that the shard does not hold (a claim that committed while its reply was
-- lost to a dropped connection): give them back so they are claimed again, not stranded.
UPDATE tasks SET claim_epoch = NULL,
    status = CASE WHEN status = 'delivering' THEN CASE WHEN attempts = 0 THEN 'queued' ELSE 'failed' END
                  ELSE status END,
    updated_at = now()
WHERE partition >= $1 AND partition < $2 AND claim_epoch = $3 AND NOT (id = ANY($4::uuid[]));

-- name: set_circuit_state
UPDATE endpoints SET circuit_state = $2, circuit_opened_at = $3 WHERE id = $1;

-- name: ensure_attempt_partitions
SELECT mittr_ensure_attempt_partitions(current_date - 1, $1);
