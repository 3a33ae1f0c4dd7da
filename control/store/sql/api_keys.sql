-- API keys as the API manages them (POST/GET/DELETE /api/v1/api-keys). Creation is insert_api_key
-- (tenants.sql); a deleted key keeps its row (deleted_at) for the audit log and never authenticates.

-- name: list_api_keys
-- A page of a workspace's keys, newest first; never the hash. Expired keys read as inactive.
SELECT id, name, key_prefix, scopes, rate_limit, expires_at, project_id, created_at,
       is_active AND (expires_at IS NULL OR expires_at > now()) AS is_active
FROM api_keys
WHERE client_id = $1 AND deleted_at IS NULL
  AND ($2::uuid IS NULL OR project_id = $2)
  AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $5;

-- name: lock_api_key
-- One live key of the caller's workspace (and project, when scoped), locked for deletion.
SELECT id, name, key_prefix, scopes, rate_limit, expires_at, project_id, created_at,
       is_active AND (expires_at IS NULL OR expires_at > now()) AS is_active
FROM api_keys
WHERE id = $1 AND client_id = $2 AND ($3::uuid IS NULL OR project_id = $3) AND deleted_at IS NULL
FOR UPDATE;

-- name: delete_api_key
-- Soft delete: is_active goes too, so every query that only asks is_active forgets the key as well.
UPDATE api_keys SET deleted_at = now(), is_active = false WHERE id = $1 AND deleted_at IS NULL;

-- name: api_key_expiry
SELECT expires_at FROM api_keys WHERE id = $1;
