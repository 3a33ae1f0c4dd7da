-- name: poll_endpoint
SELECT id, partition, delivery_mode, status
FROM endpoints
WHERE id = $1 AND client_id = $2 AND deleted_at IS NULL AND ($3::uuid IS NULL OR project_id = $3);

-- name: poll_take
-- Hand out up to $2 waiting deliveries of a poll-mode endpoint and hide them for $3 seconds.
-- Concurrent consumers never get the same one (SKIP LOCKED); a paused endpoint offers nothing.
WITH picked AS (
    SELECT t.id FROM tasks t
    WHERE t.endpoint_id = $1
      AND t.status IN ('queued', 'failed') AND t.claim_epoch IS NULL
      AND t.next_attempt_at <= now()
      AND (t.poll_visible_at IS NULL OR t.poll_visible_at <= now())
      AND EXISTS (SELECT 1 FROM endpoints ep
                  WHERE ep.id = $1 AND ep.status = 'active' AND ep.delivery_mode = 'poll'
                    AND ep.deleted_at IS NULL)
    ORDER BY t.priority, t.seq
    LIMIT $2
    FOR UPDATE OF t SKIP LOCKED
)
UPDATE tasks t SET poll_taken_at = now(), poll_visible_at = now() + make_interval(secs => $3)
FROM picked, events e
WHERE t.id = picked.id AND e.id = t.event_id
RETURNING e.id, e.event_type, e.payload, e.headers, e.created_at, t.attempts, t.priority, t.seq;

-- name: poll_ack
-- Acknowledged deliveries become delivered, each with an attempt row: outcome success, no HTTP
-- status, durationMs = time since it was handed out (0 if it never was).
WITH acked AS (
    UPDATE tasks t SET status = 'delivered', attempts = t.attempts + 1, delivered_at = now(),
        poll_visible_at = NULL, last_error = NULL, updated_at = now()
    WHERE t.endpoint_id = $1 AND t.client_id = $2 AND t.event_id = ANY($3::uuid[])
      AND t.status IN ('queued', 'failed') AND t.claim_epoch IS NULL
    RETURNING t.id, t.event_id, t.attempts, t.poll_taken_at
)
INSERT INTO delivery_attempts (id, task_id, event_id, client_id, project_id, endpoint_id, event_type,
                               attempt_number, status_code, response_body, error, error_category, outcome,
                               duration_ms, processing_overhead_us, attempted_at)
SELECT gen_random_uuid(), a.id, a.event_id, $2, e.project_id, $1, e.event_type, a.attempts, NULL, '', '',
       NULL, 'success',
       GREATEST(0, floor(extract(epoch FROM now() - coalesce(a.poll_taken_at, now())) * 1000))::int,
       0, now()
FROM acked a JOIN events e ON e.id = a.event_id
RETURNING event_id, project_id, duration_ms, attempted_at;

-- name: poll_ping
SELECT 1;
