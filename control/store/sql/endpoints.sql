-- name: insert_endpoint
INSERT INTO endpoints (
    id, client_id, project_id, sub_account_id, url, event_types, description, filter, transformation,
    fifo, fifo_partition_key, max_retries, retry_backoff_ms, retry_backoff_max, retry_backoff_mult,
    timeout_ms, rate_limit_per_sec, circuit_threshold, circuit_reset_ms, custom_headers,
    allowed_cidrs, blocked_cidrs, delivery_mode, storage_config, signing_secret, mtls_cert, mtls_key,
    standard_webhooks, broker_config, partition)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
        $21, $22, $23, $24, $25, $26, $27, $28, $29, $30)
RETURNING *;

-- name: get_endpoint
SELECT * FROM endpoints
WHERE id = $1 AND client_id = $2 AND deleted_at IS NULL
  AND ($3::uuid IS NULL OR project_id = $3)
  AND ($4::uuid IS NULL OR sub_account_id = $4);

-- name: lock_endpoint
-- The current row, locked until the change (and its audit row) commits: what the change reads is
-- what it replaces.
SELECT * FROM endpoints
WHERE id = $1 AND client_id = $2 AND deleted_at IS NULL
  AND ($3::uuid IS NULL OR project_id = $3)
  AND ($4::uuid IS NULL OR sub_account_id = $4)
FOR UPDATE;

-- name: list_endpoints
SELECT * FROM endpoints
WHERE client_id = $1 AND deleted_at IS NULL
  AND ($2::uuid IS NULL OR project_id = $2)
  AND ($6::uuid IS NULL OR sub_account_id = $6)
  AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $5;

-- name: update_endpoint
UPDATE endpoints SET
    url = $3, event_types = $4, description = $5, filter = $6, transformation = $7, fifo = $8,
    fifo_partition_key = $9, max_retries = $10, retry_backoff_ms = $11, retry_backoff_max = $12,
    retry_backoff_mult = $13, timeout_ms = $14, rate_limit_per_sec = $15, circuit_threshold = $16,
    circuit_reset_ms = $17, custom_headers = $18, allowed_cidrs = $19, blocked_cidrs = $20,
    delivery_mode = $21, storage_config = $22, signing_secret = $23, mtls_cert = $24, mtls_key = $25,
    standard_webhooks = $26, broker_config = $27, version = version + 1, updated_at = now()
WHERE id = $1 AND client_id = $2 AND deleted_at IS NULL
RETURNING *;

-- name: set_endpoint_status
UPDATE endpoints SET status = $3, updated_at = now()
WHERE id = $1 AND client_id = $2 AND deleted_at IS NULL
RETURNING *;

-- name: soft_delete_endpoint
UPDATE endpoints SET deleted_at = now(), updated_at = now()
WHERE id = $1 AND client_id = $2 AND deleted_at IS NULL
  AND ($3::uuid IS NULL OR project_id = $3)
RETURNING id, partition;

-- name: kill_endpoint_tasks
UPDATE tasks SET status = 'dead', last_error = $2, claim_epoch = NULL, updated_at = now()
WHERE endpoint_id = $1 AND status IN ('queued', 'delivering', 'failed')
RETURNING event_id;

-- name: subscribed_endpoints
-- Endpoints whose eventTypes patterns match the event type; `*` matches any run of characters.
-- Fan-out stays inside the event's project and sub-account ($4): it never crosses either.
SELECT id, partition, max_retries, filter
FROM endpoints e
WHERE e.client_id = $1 AND e.deleted_at IS NULL
  AND e.project_id IS NOT DISTINCT FROM $2
  AND e.sub_account_id IS NOT DISTINCT FROM $4
  AND EXISTS (
      SELECT 1 FROM unnest(e.event_types) AS p
      WHERE $3 LIKE replace(replace(replace(replace(p, '\', '\\'), '%', '\%'), '_', '\_'), '*', '%')
  );

-- name: endpoint_configs
SELECT id, client_id, url, status, deleted_at, version, timeout_ms, custom_headers, signing_secret,
       max_retries, retry_backoff_ms, retry_backoff_max, retry_backoff_mult, rate_limit_per_sec,
       circuit_threshold, circuit_reset_ms, circuit_state, circuit_opened_at, fifo, fifo_partition_key,
       allowed_cidrs, blocked_cidrs, delivery_mode, mtls_cert, mtls_key, standard_webhooks,
       sw_ed25519_private, transformation, updated_at, storage_config, broker_config
FROM endpoints WHERE id = ANY($1::uuid[]);
