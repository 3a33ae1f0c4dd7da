-- Rows are written by the endpoints_version_* triggers (migration 004); these only read them.

-- name: list_endpoint_versions
SELECT version, snapshot, created_at FROM endpoint_versions
WHERE endpoint_id = $1 AND client_id = $2
  AND ($3::integer IS NULL OR version < $3)
ORDER BY version DESC
LIMIT $4;

-- name: get_endpoint_version
SELECT version, snapshot, created_at FROM endpoint_versions
WHERE endpoint_id = $1 AND client_id = $2 AND version = $3;

-- name: get_endpoint_versions_pair
SELECT version, snapshot, created_at FROM endpoint_versions
WHERE endpoint_id = $1 AND client_id = $2 AND version = ANY($3::integer[]);
