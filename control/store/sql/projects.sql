-- Projects of a workspace. A caller scoped to a project ($3 / $2: X-Project-ID or a project-bound
-- key) sees only that project.

-- name: insert_project
INSERT INTO projects (id, client_id, name, environment) VALUES ($1, $2, $3, $4)
RETURNING *;

-- name: get_project
SELECT * FROM projects
WHERE id = $1 AND client_id = $2 AND ($3::uuid IS NULL OR id = $3);

-- name: list_projects
SELECT * FROM projects
WHERE client_id = $1
  AND ($2::uuid IS NULL OR id = $2)
  AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $5;

-- name: update_project
UPDATE projects SET name = $3, environment = $4, updated_at = now()
WHERE id = $1 AND client_id = $2
RETURNING *;

-- name: lock_project
SELECT * FROM projects WHERE id = $1 AND client_id = $2 FOR UPDATE;

-- name: project_holdings
-- What a plain (not forced) delete refuses to discard: live endpoints, and events still to deliver.
SELECT EXISTS (SELECT 1 FROM endpoints
               WHERE client_id = $1 AND project_id = $2 AND deleted_at IS NULL) AS has_endpoints,
       EXISTS (SELECT 1 FROM events
               WHERE client_id = $1 AND project_id = $2
                 AND status IN ('queued', 'delivering', 'failed')) AS has_undelivered;

-- name: project_endpoint_ids
-- One batch of a project's live endpoints, for deleting them one by one through the endpoint path.
SELECT id FROM endpoints
WHERE client_id = $1 AND project_id = $2 AND deleted_at IS NULL
ORDER BY created_at, id
LIMIT $3;

-- name: delete_project_event_types
-- One batch of a project's event types (as DELETE /event-types/{id} does, they go for good).
DELETE FROM event_types
WHERE id IN (SELECT id FROM event_types WHERE client_id = $1 AND project_id = $2 LIMIT $3)
RETURNING id;

-- name: delete_project_inbound_endpoints
-- Its public inbound paths stop answering (they would feed a project that no longer exists).
DELETE FROM inbound_endpoints WHERE client_id = $1 AND project_id = $2;

-- name: revoke_project_keys
-- API keys bound to the project stop working (soft delete: the rows stay for the audit trail).
UPDATE api_keys SET is_active = false, deleted_at = now()
WHERE client_id = $1 AND project_id = $2 AND deleted_at IS NULL
RETURNING id;

-- name: delete_project
DELETE FROM projects WHERE id = $1 AND client_id = $2;
