-- name: insert_event
INSERT INTO events (id, client_id, project_id, idempotency_key, event_type, destination, payload, headers,
                    max_attempts, priority, delay_seconds, status, task_count)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
ON CONFLICT (client_id, idempotency_key) DO NOTHING
RETURNING id, created_at;

-- name: insert_tasks
INSERT INTO tasks (id, event_id, client_id, endpoint_id, partition, status, max_attempts, priority,
                   next_attempt_at, created_at)
SELECT u.id, $1, $2, u.endpoint_id, u.partition, 'queued', u.max_attempts, $3,
       $4::timestamptz + make_interval(secs => $5), $4
FROM unnest($6::uuid[], $7::uuid[], $8::int[], $9::int[]) AS u(id, endpoint_id, partition, max_attempts);

-- name: event_id_by_key
SELECT id FROM events WHERE client_id = $1 AND idempotency_key = $2;

-- name: notify_work
SELECT pg_notify('mittr_work', $1);

-- name: get_event
SELECT id, idempotency_key, event_type, destination, payload, headers, status, attempts, max_attempts,
       priority, delay_seconds, task_count, created_at, updated_at, delivered_at, project_id
FROM events
WHERE id = $1 AND client_id = $2 AND ($3::uuid IS NULL OR project_id = $3);

-- name: list_events
SELECT id, idempotency_key, event_type, destination, status, attempts, max_attempts, priority,
       created_at, delivered_at
FROM events
WHERE client_id = $1
  AND ($2::uuid IS NULL OR project_id = $2)
  AND ($3::text IS NULL OR status = $3)
  AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $6;

-- name: event_attempts
SELECT id, event_id, endpoint_id, attempt_number, status_code, response_body, error, error_category,
       outcome, duration_ms, processing_overhead_us, attempted_at
FROM delivery_attempts
WHERE event_id = $1 AND client_id = $2
ORDER BY attempted_at, attempt_number, id;
