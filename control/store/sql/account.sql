-- name: account_workspace
SELECT id, name, onboarded_at, plan_id, monthly_quota, created_at
FROM clients WHERE id = $1 AND deleted_at IS NULL;

-- name: account_user
SELECT id, email, name, email_verified_at FROM users WHERE id = $1;

-- name: account_other_memberships
-- The person's other workspaces (a workspace switcher), by name; $3 bounds the list.
SELECT c.id, c.name, m.role
FROM memberships m
JOIN clients c ON c.id = m.client_id AND c.deleted_at IS NULL
WHERE m.user_id = $1 AND m.client_id <> $2
ORDER BY c.name, c.id
LIMIT $3;

-- name: account_key
SELECT id, name, key_prefix, scopes, project_id, expires_at FROM api_keys WHERE id = $1 AND client_id = $2;

-- name: account_complete_onboarding
-- Names the workspace and marks it onboarded; a repeat renames it and keeps the first completion
-- time. Returns the row before and after, for the audit log.
UPDATE clients c SET name = $2, onboarded_at = coalesce(c.onboarded_at, now())
FROM (SELECT id, name, onboarded_at FROM clients WHERE id = $1 AND deleted_at IS NULL FOR UPDATE) old
WHERE c.id = old.id
RETURNING c.id, c.name, c.onboarded_at, c.plan_id, c.monthly_quota, c.created_at,
          old.name AS old_name, old.onboarded_at AS old_onboarded_at;

-- name: account_endpoint_count
SELECT count(*) FROM endpoints WHERE client_id = $1 AND deleted_at IS NULL;
