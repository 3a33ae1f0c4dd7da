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
-- Due work of the range, most urgent first. Targets already holding their share of the shard's
-- memory ($7: endpoints, $8: partitions of direct destinations) are skipped, so their backlog waits
-- here instead of crowding out everyone else. A claimed task keeps its status: it is `delivering`
-- only once an attempt is on the wire. Work of deleted endpoints is claimed too, to be ended.
WITH lease AS (
    SELECT 1 FROM shard_leases WHERE slot = $1 AND epoch = $2 AND expires_at > now()
), due AS (
    SELECT t.id FROM tasks t
    WHERE EXISTS (SELECT 1 FROM lease)
      AND t.status IN ('queued', 'failed') AND t.claim_epoch IS NULL
      AND t.partition >= $3 AND t.partition < $4
      AND t.next_attempt_at <= now() + make_interval(secs => $5)
      AND (t.endpoint_id IS NULL OR t.endpoint_id <> ALL($7::uuid[]))
      AND (t.endpoint_id IS NOT NULL OR t.partition <> ALL($8::int[]))
      AND (t.endpoint_id IS NULL OR NOT EXISTS (
            SELECT 1 FROM endpoints ep
            WHERE ep.id = t.endpoint_id AND ep.deleted_at IS NULL
              AND (ep.status = 'paused' OR ep.delivery_mode = 'poll' OR ep.fifo)))
    ORDER BY t.priority, t.next_attempt_at
    LIMIT $6
    FOR UPDATE OF t SKIP LOCKED
)
UPDATE tasks t SET claim_epoch = $2, updated_at = now()
FROM due, events e, clients c
WHERE t.id = due.id AND e.id = t.event_id AND c.id = t.client_id
RETURNING t.id, t.event_id, t.client_id, t.endpoint_id, t.partition, t.seq, t.attempts, t.max_attempts,
          t.priority, t.next_attempt_at, e.destination, e.event_type, e.payload, e.headers, e.project_id,
          c.signing_secret AS client_secret;

-- name: claim_fifo_tasks
-- FIFO endpoints: all their pending work in creation order, whatever its due time, so that a
-- shard's FIFO gate always sees a key's head before the tasks behind it. Endpoints at their cap
-- ($6) are skipped; deleted ones are claimed to be ended.
WITH lease AS (
    SELECT 1 FROM shard_leases WHERE slot = $1 AND epoch = $2 AND expires_at > now()
), due AS (
    SELECT t.id FROM endpoints ep
    JOIN tasks t ON t.endpoint_id = ep.id
    WHERE EXISTS (SELECT 1 FROM lease)
      AND ep.fifo AND (ep.deleted_at IS NOT NULL OR (ep.status = 'active' AND ep.delivery_mode <> 'poll'))
      AND ep.partition >= $3 AND ep.partition < $4
      AND ep.id <> ALL($6::uuid[])
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

-- name: claim_bounded_tasks
-- Endpoints that can take only a little right now (rate-limited, breaker open, slow), each for at
-- most its room ($6: endpoint ids, $7: rooms): their backlog stays here, and the general claim
-- skips them. Deleted endpoints' work is claimed to be ended.
WITH lease AS (
    SELECT 1 FROM shard_leases WHERE slot = $1 AND epoch = $2 AND expires_at > now()
), due AS (
    SELECT picked.id
    FROM unnest($6::uuid[], $7::int[]) AS w(endpoint_id, room)
    JOIN endpoints ep ON ep.id = w.endpoint_id
         AND (ep.deleted_at IS NOT NULL OR (ep.status = 'active' AND ep.delivery_mode <> 'poll' AND NOT ep.fifo))
    CROSS JOIN LATERAL (
        SELECT t.id FROM tasks t
        WHERE t.endpoint_id = w.endpoint_id AND t.status IN ('queued', 'failed') AND t.claim_epoch IS NULL
          AND t.partition >= $3 AND t.partition < $4
          AND t.next_attempt_at <= now() + make_interval(secs => $5)
        ORDER BY t.priority, t.next_attempt_at
        LIMIT w.room
        FOR UPDATE OF t SKIP LOCKED
    ) picked
    WHERE EXISTS (SELECT 1 FROM lease)
)
UPDATE tasks t SET claim_epoch = $2, updated_at = now()
FROM due, events e, clients c
WHERE t.id = due.id AND e.id = t.event_id AND c.id = t.client_id
RETURNING t.id, t.event_id, t.client_id, t.endpoint_id, t.partition, t.seq, t.attempts, t.max_attempts,
          t.priority, t.next_attempt_at, e.destination, e.event_type, e.payload, e.headers, e.project_id,
          c.signing_secret AS client_secret;

-- name: bury_tasks
-- Claimed work whose endpoint was deleted (an ingest raced the DELETE): ended, with the reason.
UPDATE tasks SET status = 'dead', last_error = $3, claim_epoch = NULL, updated_at = now()
WHERE id = ANY($1::uuid[]) AND claim_epoch = $2
RETURNING event_id;

-- name: mark_delivering
-- Attempts still on the wire after a moment show as `delivering` (fenced: a task whose outcome was
-- recorded meanwhile has another attempt count or claim and is left alone).
UPDATE tasks t SET status = 'delivering', updated_at = now()
FROM unnest($1::uuid[], $2::int[]) AS u(id, attempts)
WHERE t.id = u.id AND t.claim_epoch = $3 AND t.attempts = u.attempts AND t.status IN ('queued', 'failed')
RETURNING t.event_id;

-- name: record_outcomes
-- Fenced twice. By the shard's epoch: a shard whose claim was taken over changes nothing. By the
-- attempt count each outcome was decided on ($9): the writer sends one row per count the task may
-- hold before this write (one per distinct count among the task's outcomes in the batch, each with
-- the latest outcome's values), so a write retried after its COMMIT did go through (only the
-- acknowledgement was lost) finds the count moved on and matches nothing, and so does an outcome
-- that a replay's reset overtook.
UPDATE tasks t SET status = u.status, attempts = u.attempts, next_attempt_at = u.next_at,
    claim_epoch = u.keep_epoch, last_error = u.err, delivered_at = u.delivered_at, updated_at = now()
FROM unnest($1::uuid[], $2::text[], $3::int[], $4::timestamptz[], $5::bigint[], $6::text[],
            $7::timestamptz[], $9::int[]) AS u(id, status, attempts, next_at, keep_epoch, err, delivered_at, prior)
WHERE t.id = u.id AND t.claim_epoch = $8 AND t.attempts = u.prior
RETURNING t.id, t.event_id, t.status, t.attempts, t.delivered_at;

-- name: applied_attempts
-- Which of these attempts are recorded already. A write retried after an ambiguous failure leaves
-- their outcomes out: the COMMIT that recorded them went through.
SELECT a.id FROM delivery_attempts a
JOIN unnest($1::uuid[], $2::timestamptz[]) AS u(id, at) ON a.id = u.id AND a.attempted_at = u.at;

-- name: insert_attempts
-- Attempt rows the idempotent way, for a write retried after an ambiguous failure (a first try uses
-- COPY, which is faster): a row already there is left alone, and only the ids inserted now come
-- back, so that the analytics roll-ups count each attempt once.
INSERT INTO delivery_attempts (id, task_id, event_id, client_id, project_id, endpoint_id, event_type,
    attempt_number, status_code, response_body, error, error_category, outcome, duration_ms,
    processing_overhead_us, attempted_at)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], $6::uuid[], $7::text[],
                     $8::int[], $9::int[], $10::text[], $11::text[], $12::text[], $13::text[], $14::int[],
                     $15::int[], $16::timestamptz[])
ON CONFLICT (id, attempted_at) DO NOTHING
RETURNING id;

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

-- name: rollup_single_task_events
-- The event roll-up without reading tasks back, for events of one task (direct events, typed events
-- with one subscriber): their status, attempts and delivered_at are their task's, which the writer
-- has just set (record_outcomes' RETURNING, passed here). Returns the ids that are not such events,
-- for rollup_events to aggregate.
WITH u AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::timestamptz[])
        AS u(event_id, status, attempts, delivered_at)
), one AS (
    UPDATE events e SET status = u.status, attempts = u.attempts, delivered_at = u.delivered_at, updated_at = now()
    FROM u WHERE e.id = u.event_id AND e.task_count = 1
    RETURNING e.id
)
SELECT coalesce(array_agg(DISTINCT u.event_id), '{}') FROM u WHERE u.event_id NOT IN (SELECT id FROM one);

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

-- name: endpoint_revisions
-- Every config change (edit, pause, resume, delete, mTLS, keys) moves updated_at; a shard compares
-- these with its cache to catch a change whose NOTIFY it missed.
SELECT id, updated_at FROM endpoints WHERE id = ANY($1::uuid[]);

-- name: set_circuit_state
UPDATE endpoints SET circuit_state = $2, circuit_opened_at = $3 WHERE id = $1;

-- name: ensure_attempt_partitions
SELECT mittr_ensure_attempt_partitions(current_date - 1, $1);
