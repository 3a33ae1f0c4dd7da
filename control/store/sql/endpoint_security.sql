-- name: set_endpoint_mtls
UPDATE endpoints SET mtls_cert = $3, mtls_key = $4, version = version + 1, updated_at = now()
WHERE id = $1 AND client_id = $2 AND deleted_at IS NULL
RETURNING *;

-- name: set_endpoint_ed25519
UPDATE endpoints SET sw_ed25519_private = $3, sw_ed25519_public = $4, version = version + 1, updated_at = now()
WHERE id = $1 AND client_id = $2 AND deleted_at IS NULL
RETURNING *;
