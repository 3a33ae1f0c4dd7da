-- name: insert_event
-- One event ($18: its sub-account or NULL), its deliveries ($14..$17, one array element each) and its count against the monthly
-- quota, in one statement and so in one transaction: nothing when the idempotency key is taken (no
-- row back), nothing either when the quota refuses it (mittr_count_usage raises MT402), nothing
-- when the sub-account is (or is being) deactivated: its row is share-locked here, so a deactivation
-- either waits for this insert's commit or, committed first, makes the guard find no active row.
-- Nothing either when $19 (the routing revision the deliveries were worked out under, from the
-- worker's cache; NULL: read just now) is no longer the workspace's: the caller reads again.
WITH ev AS (
    INSERT INTO events (id, client_id, project_id, idempotency_key, event_type, destination, payload, headers,
                        max_attempts, priority, delay_seconds, status, task_count, sub_account_id)
    SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $18
    WHERE ($19::bigint IS NULL OR (SELECT c.routing_rev FROM clients c WHERE c.id = $2) = $19)
      AND ($18::uuid IS NULL OR EXISTS (
        SELECT 1 FROM sub_accounts s WHERE s.id = $18 AND s.client_id = $2 AND s.deactivated_at IS NULL
        FOR SHARE))
    ON CONFLICT (client_id, idempotency_key) DO NOTHING
    RETURNING id, created_at
), deliveries AS (
    -- A FIFO endpoint's tasks are delivered in `seq` order, and the engine claims what is committed:
    -- a seq taken from the sequence by an ingest that commits after a later one's would let the
    -- later task be claimed and sent first. So the seq of a FIFO endpoint's task is taken under
    -- that endpoint's row lock (held to commit, released after the insert is visible): per FIFO
    -- endpoint, seq order is commit order. Callers pass the endpoints sorted (no lock-order deadlock).
    INSERT INTO tasks (id, event_id, client_id, endpoint_id, partition, status, max_attempts, priority,
                       next_attempt_at, created_at, seq)
    SELECT u.id, ev.id, $2, u.endpoint_id, u.partition, 'queued', u.max_attempts, $10,
           ev.created_at + make_interval(secs => $11), ev.created_at,
           coalesce((SELECT nextval('task_seq') FROM (
                         SELECT 1 FROM endpoints ep WHERE ep.id = u.endpoint_id AND ep.fifo FOR NO KEY UPDATE) locked),
                    nextval('task_seq'))
    -- mittr_deliveries: unnest with a one-row estimate, so that this statement's plan is reused (034).
    FROM ev, mittr_deliveries($14::uuid[], $15::uuid[], $16::int[], $17::int[]) AS u
    RETURNING 1
)
SELECT ev.id, ev.created_at, mittr_count_usage($2, 1) AS counted
FROM ev;

-- name: routing_rev
-- The workspace's routing revision (migration 029): read before what fan-out and validation read.
SELECT routing_rev FROM clients WHERE id = $1;

-- name: event_id_by_key
-- Keys are unique per workspace; the id is named only to a caller who may read the event.
SELECT id FROM events WHERE client_id = $1 AND idempotency_key = $2 AND ($3::uuid IS NULL OR project_id = $3);

-- name: notify_work
-- The NOTIFY channels (control/signalling.py says what each payload holds).
SELECT pg_notify('mittr_work', $1);

-- name: notify_endpoint
SELECT pg_notify('mittr_endpoint', $1);

-- name: get_event
SELECT id, idempotency_key, event_type, destination, payload, headers, status, attempts, max_attempts,
       priority, delay_seconds, task_count, created_at, updated_at, delivered_at, project_id, sub_account_id
FROM events
WHERE id = $1 AND client_id = $2 AND ($3::uuid IS NULL OR project_id = $3)
  AND ($4::uuid IS NULL OR sub_account_id = $4);

-- name: list_events
-- The list index, newest first, filtered by status ($3) if asked. $8 bounds how many events are read
-- (NULL: no bound). No index holds `status` (migration 033): unbounded, for no filter or a status
-- most events have (delivered); bounded, a first look for a rarer one (queued is common in a
-- backlog), which list_events_by_tasks then answers if the page is not full.
SELECT * FROM (
    SELECT id, idempotency_key, event_type, destination, status, attempts, max_attempts, priority,
           created_at, delivered_at, sub_account_id
    FROM events
    WHERE client_id = $1
      AND ($2::uuid IS NULL OR project_id = $2)
      AND ($7::uuid IS NULL OR sub_account_id = $7)
      AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5::uuid))
    ORDER BY created_at DESC, id DESC
    LIMIT $8
) w
WHERE ($3::text IS NULL OR w.status = $3)
ORDER BY w.created_at DESC, w.id DESC
LIMIT $6;

-- name: tasks_in_event_order
-- The next $5 tasks of the workspace in the states $2 before the cursor ($3, $4), in their events'
-- order (a task's created_at is its event's): per state an ordered, bounded scan of
-- tasks_client_open (each unfinished state of $2) or tasks_client_dead, merged. What a
-- rare-status list reads its events through.
SELECT u.created_at, u.event_id FROM (
    SELECT o.* FROM unnest($2::text[]) AS s(state) CROSS JOIN LATERAL (
        SELECT t.created_at, t.event_id FROM tasks t
        WHERE t.client_id = $1 AND t.status IN ('queued', 'delivering', 'failed') AND t.status = s.state
          AND ($3::timestamptz IS NULL OR (t.created_at, t.event_id) < ($3, $4::uuid))
        ORDER BY t.created_at DESC, t.event_id DESC
        LIMIT $5) o
    UNION ALL
    (SELECT t.created_at, t.event_id FROM tasks t
     WHERE t.client_id = $1 AND t.status = 'dead' AND 'dead' = ANY($2::text[])
       AND ($3::timestamptz IS NULL OR (t.created_at, t.event_id) < ($3, $4::uuid))
     ORDER BY t.created_at DESC, t.event_id DESC
     LIMIT $5)
) u
ORDER BY u.created_at DESC, u.event_id DESC
LIMIT $5;

-- name: events_in_status
-- Those of these events ($1) of the caller that are in status $4.
SELECT id, idempotency_key, event_type, destination, status, attempts, max_attempts, priority,
       created_at, delivered_at, sub_account_id
FROM events
WHERE id = ANY($1::uuid[]) AND client_id = $2 AND ($3::uuid IS NULL OR project_id = $3) AND status = $4
  AND ($5::uuid IS NULL OR sub_account_id = $5);

-- name: event_attempts
SELECT id, event_id, endpoint_id, attempt_number, status_code, response_body, error, error_category,
       outcome, duration_ms, processing_overhead_us, attempted_at
FROM delivery_attempts
WHERE event_id = $1 AND client_id = $2
ORDER BY attempted_at, attempt_number, id;

-- name: event_pending_tasks
-- An event's undelivered deliveries with what control/policy/waiting.py needs to say why each
-- waits: its endpoint's stored state and the database's clock, in one statement (tasks_event).
SELECT t.endpoint_id, CASE WHEN t.endpoint_id IS NULL THEN e.destination END AS destination,
       t.status, t.attempts, t.next_attempt_at, t.poll_visible_at,
       ep.id IS NOT NULL AS has_endpoint, ep.status AS endpoint_status, ep.delivery_mode,
       ep.rate_limit_per_sec, ep.circuit_state, ep.circuit_threshold, ep.circuit_opened_at,
       ep.circuit_reset_ms, now() AS now
FROM tasks t
JOIN events e ON e.id = t.event_id
LEFT JOIN endpoints ep ON ep.id = t.endpoint_id AND ep.client_id = t.client_id
WHERE t.event_id = $1 AND t.client_id = $2 AND e.client_id = $2 AND ($3::uuid IS NULL OR e.project_id = $3)
  AND t.status IN ('queued', 'delivering', 'failed')
ORDER BY t.id;

-- name: share_lock_active_sub_account
-- Held until the ingest's commit: a concurrent deactivation (FOR UPDATE) waits for it, or, when it
-- committed first, this reads the deactivated row (after waiting) and the ingest is refused.
SELECT sub_id, deactivated_at IS NULL AS active FROM sub_accounts WHERE id = $1 AND client_id = $2 FOR SHARE;

-- name: insert_event_batch
-- A batch of direct events and their one task each, its check and its count, in one statement (so
-- one transaction, one round trip). Rows whose idempotency key already exists are skipped, and so is
-- every row when the sub-account ($12) is (or is being) deactivated: its row is share-locked here,
-- as in insert_event. Then mittr_batch_complete raises MT409 unless all $13 were stored, and
-- nothing is kept; the caller names the keys or the sub-account. Otherwise mittr_count_usage counts
-- them (or raises MT402: nothing kept either). One row back: the batch's createdAt.
WITH ev AS (
    INSERT INTO events (id, client_id, project_id, idempotency_key, destination, payload, headers,
                        max_attempts, priority, status, task_count, sub_account_id)
    SELECT u.id, $1, $2, u.key, u.destination, u.payload, u.headers::jsonb, u.max_attempts, $3, 'queued', 1,
           $12::uuid
    FROM unnest($4::uuid[], $5::text[], $6::text[], $7::bytea[], $8::text[], $9::int[])
         AS u(id, key, destination, payload, headers, max_attempts)
    WHERE ($12::uuid IS NULL OR EXISTS (
        SELECT 1 FROM sub_accounts s WHERE s.id = $12 AND s.client_id = $1 AND s.deactivated_at IS NULL
        FOR SHARE))
    ON CONFLICT (client_id, idempotency_key) DO NOTHING
    RETURNING id, created_at
), tk AS (
    INSERT INTO tasks (id, event_id, client_id, partition, status, max_attempts, priority, next_attempt_at,
                       created_at)
    SELECT u.task_id, ev.id, $1, u.partition, 'queued', u.max_attempts, $3, ev.created_at, ev.created_at
    FROM unnest($4::uuid[], $10::uuid[], $11::int[], $9::int[]) AS u(event_id, task_id, partition, max_attempts)
    JOIN ev ON ev.id = u.event_id
), stored AS (
    SELECT count(*)::int AS n, min(created_at) AS created_at FROM ev
)
SELECT stored.created_at,
       CASE WHEN mittr_batch_complete($13, stored.n) THEN mittr_count_usage($1, stored.n) END AS counted
FROM stored;

-- name: existing_event_keys
-- Keys of a batch that other requests already stored ($3: the ids this batch was inserting).
SELECT idempotency_key, id FROM events
WHERE client_id = $1 AND idempotency_key = ANY($2::text[]) AND NOT (id = ANY($3::uuid[]));

-- name: lock_event_tasks
-- Lifecycle changes lock an event's tasks before the event row, in the order the engine's writer
-- does (tasks, then the roll-up), so the two do not deadlock.
SELECT t.id FROM tasks t
WHERE t.event_id = $1 AND t.client_id = $2
ORDER BY t.id
FOR UPDATE;

-- name: update_event_content
UPDATE events SET destination = coalesce($2, destination), payload = coalesce($3, payload),
    headers = coalesce($4, headers), updated_at = now()
WHERE id = $1;

-- name: release_event_claims
-- An edited event's pending retries leave the shard that holds them, so that it claims them again
-- with the new content (or, moved to another partition, another shard does).
UPDATE tasks SET claim_epoch = NULL, updated_at = now()
WHERE event_id = $1 AND status IN ('queued', 'failed') AND claim_epoch IS NOT NULL
RETURNING partition;

-- name: held_direct_tasks
-- A direct event's deliveries some shard holds in memory (claimed), before its destination moves.
SELECT id, partition FROM tasks WHERE event_id = $1 AND endpoint_id IS NULL AND claim_epoch IS NOT NULL;

-- name: notify_release
SELECT pg_notify('mittr_release', $1);

-- name: move_direct_task
UPDATE tasks SET partition = $2, updated_at = now() WHERE event_id = $1 AND endpoint_id IS NULL;

-- name: requeue_tasks
-- Failed and dead deliveries of failed/dead events go back to the queue with a fresh attempt budget,
-- due now. Deliveries to a deleted endpoint stay dead. A shard's claim is dropped: an outcome it
-- still reports for the old claim is fenced out.
UPDATE tasks t SET status = 'queued', attempts = 0, next_attempt_at = now(), claim_epoch = NULL,
    last_error = NULL, delivered_at = NULL, poll_visible_at = NULL, poll_taken_at = NULL, updated_at = now()
FROM events e
WHERE t.event_id = ANY($1::uuid[]) AND e.id = t.event_id AND e.client_id = $2
  AND ($3::uuid IS NULL OR e.project_id = $3)
  AND ($4::uuid IS NULL OR t.endpoint_id = $4)
  AND e.status IN ('failed', 'dead') AND t.status IN ('failed', 'dead')
  AND (t.endpoint_id IS NULL OR EXISTS (
        SELECT 1 FROM endpoints ep WHERE ep.id = t.endpoint_id AND ep.deleted_at IS NULL))
RETURNING t.event_id, t.partition;

-- name: retryable_events_by_status
-- Oldest first; only events with at least one delivery requeue_tasks would take ($3: failed or
-- dead). Found through those tasks (tasks_client_open, tasks_dead_changed): no index holds
-- events.status (migration 033).
SELECT e.id FROM events e
WHERE e.id IN (
        SELECT c.event_id FROM (
            SELECT t.event_id, t.endpoint_id FROM tasks t WHERE t.client_id = $1 AND t.status = 'failed'
            UNION ALL
            SELECT t.event_id, t.endpoint_id FROM tasks t WHERE t.client_id = $1 AND t.status = 'dead') c
        WHERE c.endpoint_id IS NULL OR EXISTS (
            SELECT 1 FROM endpoints ep WHERE ep.id = c.endpoint_id AND ep.deleted_at IS NULL))
  AND e.client_id = $1 AND ($2::uuid IS NULL OR e.project_id = $2) AND e.status = $3
ORDER BY e.created_at, e.id
LIMIT $4;

-- name: retryable_events_by_endpoint
SELECT t.event_id AS id FROM tasks t
JOIN events e ON e.id = t.event_id
JOIN endpoints ep ON ep.id = t.endpoint_id
WHERE t.endpoint_id = $1 AND t.client_id = $2 AND ep.client_id = $2 AND ep.deleted_at IS NULL
  AND ($3::uuid IS NULL OR e.project_id = $3)
  AND t.status = ANY($4::text[]) AND e.status IN ('failed', 'dead')
ORDER BY t.created_at, t.id
LIMIT $5;
