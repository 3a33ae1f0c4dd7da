-- name: insert_alert_rule
INSERT INTO alert_rules (id, client_id, project_id, endpoint_id, name, description, enabled, metric, operator,
                         threshold, time_window, window_s, action, action_secrets, cooldown, cooldown_s)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
RETURNING *;

-- name: get_alert_rule
SELECT * FROM alert_rules
WHERE id = $1 AND client_id = $2 AND ($3::uuid IS NULL OR project_id = $3);

-- name: lock_alert_rule
SELECT * FROM alert_rules
WHERE id = $1 AND client_id = $2 AND ($3::uuid IS NULL OR project_id = $3)
FOR UPDATE;

-- name: list_alert_rules
SELECT * FROM alert_rules
WHERE client_id = $1
  AND ($2::uuid IS NULL OR project_id = $2)
  AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $5;

-- name: update_alert_rule
UPDATE alert_rules SET
    endpoint_id = $3, name = $4, description = $5, enabled = $6, metric = $7, operator = $8, threshold = $9,
    time_window = $10, window_s = $11, action = $12, action_secrets = $13, cooldown = $14, cooldown_s = $15,
    -- a changed condition starts over: the next evaluation judges it afresh
    state = CASE WHEN (metric, operator, threshold, window_s, endpoint_id) IS DISTINCT FROM ($7, $8, $9, $11, $3)
                 THEN 'ok' ELSE state END,
    updated_at = now()
WHERE id = $1 AND client_id = $2
RETURNING *;

-- name: set_alert_rule_enabled
UPDATE alert_rules SET enabled = $3, state = CASE WHEN $3 THEN state ELSE 'ok' END, updated_at = now()
WHERE id = $1 AND client_id = $2
RETURNING *;

-- name: delete_alert_rule
DELETE FROM alert_rules WHERE id = $1 AND client_id = $2 RETURNING id;

-- name: alert_rules_due
-- Enabled rules to evaluate: one workspace's ($1), or every workspace's (NULL); ids only, each is
-- then locked and judged in its own short transaction.
SELECT r.id, r.client_id, r.project_id FROM alert_rules r JOIN clients c ON c.id = r.client_id
WHERE r.enabled AND c.deleted_at IS NULL AND ($1::uuid IS NULL OR r.client_id = $1)
  AND ($2::uuid IS NULL OR r.project_id = $2)
ORDER BY r.client_id, r.id;

-- name: alert_rule_for_evaluation
SELECT * FROM alert_rules WHERE id = $1 AND enabled FOR UPDATE SKIP LOCKED;

-- name: alert_window_totals
-- One rule's window over the per-minute rollups (the same rows and sums /api/v1/analytics reads):
-- $2 project, $3 endpoint (NULL = all), minutes in [$4, $5).
WITH r AS (
    SELECT * FROM delivery_rollups
    WHERE client_id = $1 AND ($2::uuid IS NULL OR project_id = $2) AND ($3::uuid IS NULL OR endpoint_id = $3)
      AND minute >= $4 AND minute < $5
)
SELECT coalesce(sum(attempts), 0)::bigint AS attempts, coalesce(sum(successes), 0)::bigint AS successes,
       coalesce(sum(failures), 0)::bigint AS failures, coalesce(sum(timeouts), 0)::bigint AS timeouts,
       coalesce(sum(delivered), 0)::bigint AS delivered, coalesce(sum(dead), 0)::bigint AS dead,
       coalesce(sum(err_timeout), 0)::bigint AS err_timeout, coalesce(sum(err_4xx), 0)::bigint AS err_4xx,
       coalesce(sum(err_5xx), 0)::bigint AS err_5xx, coalesce(sum(err_dns), 0)::bigint AS err_dns,
       coalesce(sum(err_tls), 0)::bigint AS err_tls, coalesce(sum(err_refused), 0)::bigint AS err_refused,
       coalesce(sum(err_other), 0)::bigint AS err_other,
       coalesce(sum(duration_sum_ms), 0)::bigint AS duration_sum_ms,
       coalesce(max(duration_max_ms), 0) AS duration_max_ms,
       (SELECT array_agg(n ORDER BY i) FROM (
            SELECT h.i, sum(h.n)::bigint AS n FROM r, unnest(r.latency_hist) WITH ORDINALITY AS h(n, i)
            GROUP BY h.i) per_bucket) AS latency_hist
FROM r;

-- name: alert_queue_depth
-- Open deliveries (queued, delivering, waiting to retry) of a workspace, project, endpoint.
SELECT count(*) FROM tasks t
WHERE t.client_id = $1 AND t.status IN ('queued', 'delivering', 'failed')
  AND ($3::uuid IS NULL OR t.endpoint_id = $3)
  AND ($2::uuid IS NULL OR EXISTS (SELECT 1 FROM events e WHERE e.id = t.event_id AND e.project_id = $2));

-- name: alert_rule_judged
UPDATE alert_rules SET state = $2, last_value = $3, last_evaluated_at = now(),
    last_fired_at = CASE WHEN $4 THEN now() ELSE last_fired_at END,
    last_resolved_at = CASE WHEN $5 THEN now() ELSE last_resolved_at END
WHERE id = $1
RETURNING last_fired_at, last_resolved_at;

-- name: insert_alert_history
INSERT INTO alert_history (id, client_id, project_id, rule_id, rule_name, status, metric, operator, value,
                           threshold, time_window, channel, connector)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
RETURNING *;

-- name: alert_history_sent
UPDATE alert_history SET event_id = $2, error = $3, sent_at = CASE WHEN $3::text IS NULL THEN now() END
WHERE id = $1;

-- name: list_alert_history
SELECT h.*, e.status AS delivery_status
FROM alert_history h LEFT JOIN events e ON e.id = h.event_id AND e.client_id = h.client_id
WHERE h.client_id = $1
  AND ($2::uuid IS NULL OR h.project_id = $2)
  AND ($3::timestamptz IS NULL OR (h.created_at, h.id) < ($3, $4::uuid))
ORDER BY h.created_at DESC, h.id DESC
LIMIT $5;

-- name: endpoint_of_client
SELECT id FROM endpoints WHERE id = $1 AND client_id = $2 AND deleted_at IS NULL;

-- name: insert_connector
INSERT INTO connectors (id, client_id, project_id, name, type, config, secrets, template, notify)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (client_id, name) DO NOTHING
RETURNING *;

-- name: get_connector
SELECT * FROM connectors
WHERE name = $1 AND client_id = $2 AND ($3::uuid IS NULL OR project_id = $3);

-- name: lock_connector
SELECT * FROM connectors
WHERE name = $1 AND client_id = $2 AND ($3::uuid IS NULL OR project_id = $3)
FOR UPDATE;

-- name: list_connectors
SELECT * FROM connectors
WHERE client_id = $1
  AND ($2::uuid IS NULL OR project_id = $2)
  AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $5;

-- name: update_connector
UPDATE connectors SET config = $3, secrets = $4, template = $5, notify = $6, updated_at = now()
WHERE id = $1 AND client_id = $2
RETURNING *;

-- name: delete_connector
DELETE FROM connectors WHERE id = $1 AND client_id = $2;

-- name: rules_using_connector
SELECT name FROM alert_rules WHERE client_id = $1 AND action ->> 'connector' = $2 ORDER BY name LIMIT 10;

-- name: alerting_try_lock
-- One evaluator at a time across every process and host (session lock: gone with the connection).
SELECT pg_try_advisory_lock(hashtext('mittr_alert_evaluator'));

-- name: alerting_unlock
SELECT pg_advisory_unlock(hashtext('mittr_alert_evaluator'));
