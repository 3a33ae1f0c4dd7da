-- name: insert_audit_log
-- before/after arrive as JSON text (already redacted), parsed here: no second encoding on the way.
INSERT INTO audit_logs (id, client_id, project_id, actor_type, actor_id, actor_label, action, resource,
                        resource_id, ip, before, after)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::text::jsonb, $12::text::jsonb);

-- name: list_audit_logs
-- Newest first; under X-Project-ID only that project's rows (workspace-wide ones have none).
SELECT id, client_id, project_id, actor_type, actor_id, actor_label, action, resource, resource_id, ip,
       before, after, created_at
FROM audit_logs
WHERE client_id = $1
  AND ($2::uuid IS NULL OR project_id = $2)
  AND ($3::text IS NULL OR resource = $3)
  AND ($4::text IS NULL OR action = $4)
  AND ($5::timestamptz IS NULL OR (created_at, id) < ($5, $6::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $7;
