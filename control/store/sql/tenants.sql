-- name: insert_client
INSERT INTO clients (id, name, signing_secret) VALUES ($1, $2, $3)
RETURNING id, name, signing_secret, created_at;

-- name: count_clients
SELECT count(*) FROM clients;

-- name: first_client
SELECT id, name FROM clients ORDER BY created_at LIMIT 1;

-- name: get_client
SELECT id, name, monthly_quota, signing_secret, created_at FROM clients WHERE id = $1;

-- name: insert_api_key
INSERT INTO api_keys (id, client_id, project_id, name, key_prefix, key_hash, scopes, rate_limit, expires_at,
                      created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
RETURNING id, client_id, project_id, name, key_prefix, scopes, rate_limit, is_active, expires_at, created_at;

-- name: api_key_by_hash
SELECT k.id, k.client_id, k.project_id, k.scopes, k.rate_limit, k.is_active, k.expires_at, k.key_prefix
FROM api_keys k
JOIN clients c ON c.id = k.client_id AND c.deleted_at IS NULL
WHERE k.key_hash = $1 AND k.deleted_at IS NULL;

-- name: project_of_client
SELECT id FROM projects WHERE id = $1 AND client_id = $2;
