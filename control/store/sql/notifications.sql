-- name: notify_due
-- The (workspace, delivery kind) pairs some connector opted into ($1 kinds; $2 one workspace or NULL
-- = all), with the pair's watermark (NULL when none yet).
SELECT DISTINCT c.client_id, k.kind, m.mark_at, m.mark_id
FROM connectors c
CROSS JOIN LATERAL unnest(c.notify) AS k(kind)
JOIN clients cl ON cl.id = c.client_id AND cl.deleted_at IS NULL
LEFT JOIN notification_marks m ON m.client_id = c.client_id AND m.kind = k.kind
WHERE k.kind = ANY($1::text[]) AND ($2::uuid IS NULL OR c.client_id = $2)
ORDER BY c.client_id, k.kind;

-- name: notify_horizon
-- Rows changed before this are settled: a transaction stamped earlier has had $1 s to commit.
SELECT clock_timestamp() - make_interval(secs => $1);

-- name: notify_connectors
SELECT * FROM connectors WHERE client_id = $1 AND $2 = ANY(notify) ORDER BY name;

-- name: notify_breaker_transitions
-- Breaker transitions to state $6 after the watermark ($2, $3) and before the horizon $4, oldest first.
SELECT b.id, b.at, b.state, b.previous, b.opened_at, b.endpoint_id, ep.project_id, ep.url, ep.description,
       ep.circuit_threshold, ep.circuit_reset_ms
FROM breaker_transitions b JOIN endpoints ep ON ep.id = b.endpoint_id
WHERE b.client_id = $1 AND b.state = $6 AND (b.at, b.id) > ($2, $3) AND b.at < $4
ORDER BY b.at, b.id
LIMIT $5;

-- name: notify_dead_tasks
-- Deliveries that ended dead after the watermark ($2, $3) and before the horizon $4, oldest first,
-- with their last attempt; events whose idempotency key matches one of $6 (the notifier's and the
-- alerts' own) are left out.
SELECT t.id, t.updated_at AS at, t.event_id, t.endpoint_id, t.attempts, t.max_attempts, t.last_error,
       e.event_type, e.destination, e.project_id, ep.url AS endpoint_url,
       a.status_code, a.error AS attempt_error
FROM tasks t
JOIN events e ON e.id = t.event_id
LEFT JOIN endpoints ep ON ep.id = t.endpoint_id
LEFT JOIN LATERAL (
    SELECT da.status_code, da.error FROM delivery_attempts da
    WHERE da.event_id = t.event_id AND da.task_id = t.id
    ORDER BY da.attempted_at DESC LIMIT 1) a ON true
WHERE t.client_id = $1 AND t.status = 'dead' AND (t.updated_at, t.id) > ($2, $3) AND t.updated_at < $4
  AND NOT (e.idempotency_key LIKE ANY ($6::text[]))
ORDER BY t.updated_at, t.id
LIMIT $5;

-- name: notify_mark_set
-- Move a watermark forward (never back).
INSERT INTO notification_marks (client_id, kind, mark_at, mark_id) VALUES ($1, $2, $3, $4)
ON CONFLICT (client_id, kind) DO UPDATE SET mark_at = EXCLUDED.mark_at, mark_id = EXCLUDED.mark_id,
    updated_at = now()
WHERE (notification_marks.mark_at, notification_marks.mark_id) < (EXCLUDED.mark_at, EXCLUDED.mark_id);

-- name: notify_mark_opt_in
-- Connector $2 of workspace $1 newly opted into kinds $3: a kind no other connector of the workspace
-- takes starts now (no backlog of what happened before anyone listened).
INSERT INTO notification_marks (client_id, kind, mark_at)
SELECT $1, k, now() FROM unnest($3::text[]) AS k
ON CONFLICT (client_id, kind) DO UPDATE
    SET mark_at = EXCLUDED.mark_at, mark_id = '00000000-0000-0000-0000-000000000000', updated_at = now()
WHERE NOT EXISTS (SELECT 1 FROM connectors c
                  WHERE c.client_id = $1 AND c.id <> $2 AND EXCLUDED.kind = ANY (c.notify));

-- name: notify_prune_transitions
-- Breaker transitions older than a week were notified (or nobody listened): bounded batches.
DELETE FROM breaker_transitions
WHERE id = ANY (ARRAY(SELECT id FROM breaker_transitions WHERE at < now() - interval '7 days' LIMIT 1000));
