-- name: insert_inbound_endpoint
-- Nothing back when the path suffix is taken (by anyone: it is unique across the server).
INSERT INTO inbound_endpoints (id, client_id, project_id, name, path_suffix, source, source_config,
                               destination_ids, event_type_mapping, description, transformation, status)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (path_suffix) DO NOTHING
RETURNING *;

-- name: get_inbound_endpoint
SELECT * FROM inbound_endpoints
WHERE id = $1 AND client_id = $2 AND ($3::uuid IS NULL OR project_id = $3);

-- name: lock_inbound_endpoint
SELECT * FROM inbound_endpoints
WHERE id = $1 AND client_id = $2 AND ($3::uuid IS NULL OR project_id = $3)
FOR UPDATE;

-- name: list_inbound_endpoints
SELECT * FROM inbound_endpoints
WHERE client_id = $1
  AND ($2::uuid IS NULL OR project_id = $2)
  AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $5;

-- name: update_inbound_endpoint
UPDATE inbound_endpoints SET
    name = $3, path_suffix = $4, source = $5, source_config = $6, destination_ids = $7,
    event_type_mapping = $8, description = $9, transformation = $10, status = $11, updated_at = now()
WHERE id = $1 AND client_id = $2
RETURNING *;

-- name: delete_inbound_endpoint
DELETE FROM inbound_endpoints
WHERE id = $1 AND client_id = $2 AND ($3::uuid IS NULL OR project_id = $3)
RETURNING *;

-- name: inbound_endpoint_by_path
-- The public route's lookup (cached a second per worker).
SELECT * FROM inbound_endpoints WHERE path_suffix = $1;

-- name: owned_endpoint_ids
-- Which of these endpoint ids are the caller's live endpoints (destinationIds must be).
SELECT id FROM endpoints
WHERE client_id = $1 AND id = ANY($3::uuid[]) AND deleted_at IS NULL
  AND project_id IS NOT DISTINCT FROM $2;

-- name: endpoints_by_ids
-- An inbound endpoint's destinations, as subscribed_endpoints gives them; deleted ones drop out.
SELECT id, partition, max_retries, filter
FROM endpoints e
WHERE e.client_id = $1 AND e.deleted_at IS NULL
  AND e.project_id IS NOT DISTINCT FROM $2
  AND e.id = ANY($3::uuid[]);
