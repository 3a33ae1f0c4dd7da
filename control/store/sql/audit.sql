-- name: insert_audit_log
INSERT INTO audit_logs (id, client_id, project_id, actor_type, actor_id, actor_label, action, resource,
                        resource_id, ip, before, after)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12::jsonb);
