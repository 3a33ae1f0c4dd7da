-- name: insert_event_type
INSERT INTO event_types (id, client_id, project_id, name, description, schema, schema_version)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT DO NOTHING
RETURNING *;

-- name: get_event_type
SELECT * FROM event_types
WHERE id = $1 AND client_id = $2 AND ($3::uuid IS NULL OR project_id = $3);

-- name: get_event_type_by_name
SELECT * FROM event_types
WHERE client_id = $1 AND project_id IS NOT DISTINCT FROM $2 AND name = $3;

-- name: lock_event_type
SELECT * FROM event_types
WHERE id = $1 AND client_id = $2 AND ($3::uuid IS NULL OR project_id = $3)
FOR UPDATE;

-- name: list_event_types
SELECT * FROM event_types
WHERE client_id = $1
  AND ($2::uuid IS NULL OR project_id = $2)
  AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $5;

-- name: update_event_type
UPDATE event_types SET
    name = $3, description = $4, schema = $5, schema_version = $6,
    revision = revision + 1, updated_at = now()
WHERE id = $1 AND client_id = $2
RETURNING *;

-- name: delete_event_type
DELETE FROM event_types
WHERE id = $1 AND client_id = $2 AND ($3::uuid IS NULL OR project_id = $3)
RETURNING *;

-- name: event_type_schema_ref
-- What payload validation needs first: which schema revision applies (the schema itself only on a
-- cache miss, through event_type_schema).
SELECT id, revision FROM event_types
WHERE client_id = $1 AND project_id IS NOT DISTINCT FROM $2 AND name = $3 AND schema IS NOT NULL;

-- name: event_type_schema
SELECT revision, schema FROM event_types WHERE id = $1;
