-- name: scim_insert_token
INSERT INTO scim_tokens (id, client_id, name, token_hash, token_prefix, created_by)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id, name, token_prefix, created_by, created_at, last_used_at, revoked_at;

-- name: scim_list_tokens
-- Revoked tokens too (they say when), newest first.
SELECT id, name, token_prefix, created_by, created_at, last_used_at, revoked_at
FROM scim_tokens
WHERE client_id = $1
  AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $4;

-- name: scim_revoke_token
-- NULL when the token is not the workspace's; a revoked one is returned as it is (revoked_before).
WITH target AS (
    SELECT id, revoked_at FROM scim_tokens WHERE id = $1 AND client_id = $2 FOR UPDATE
)
UPDATE scim_tokens t SET revoked_at = coalesce(t.revoked_at, now())
FROM target
WHERE t.id = target.id
RETURNING t.id, t.name, t.token_prefix, t.created_by, t.created_at, t.last_used_at, t.revoked_at,
          target.revoked_at IS NOT NULL AS revoked_before;

-- name: scim_token_by_hash
-- A live token of a live workspace.
SELECT t.id, t.client_id, t.name, t.token_prefix, t.last_used_at
FROM scim_tokens t
JOIN clients c ON c.id = t.client_id AND c.deleted_at IS NULL
WHERE t.token_hash = $1 AND t.revoked_at IS NULL;

-- name: scim_touch_token
UPDATE scim_tokens SET last_used_at = now() WHERE id = $1;

-- name: scim_lock_workspace
-- Serialises the workspace's SCIM writes, so two creations cannot both take one userName.
SELECT pg_advisory_xact_lock(hashtextextended('mittr-scim:' || $1::uuid::text, 0));

-- name: scim_members
-- The workspace's members as SCIM sees them, oldest membership first (a stable order for
-- startIndex paging). $2: only the one whose userName is this, compared case-insensitively.
SELECT u.id, u.email, u.name, m.role, m.created_at, m.updated_at, m.deactivated_at,
       m.scim_user_name, m.scim_external_id, m.scim_attributes
FROM memberships m
JOIN users u ON u.id = m.user_id
WHERE m.client_id = $1
  AND ($2::text IS NULL OR lower(coalesce(m.scim_user_name, u.email)) = lower($2))
ORDER BY m.created_at, u.id;

-- name: scim_member
SELECT u.id, u.email, u.name, m.role, m.created_at, m.updated_at, m.deactivated_at,
       m.scim_user_name, m.scim_external_id, m.scim_attributes
FROM memberships m
JOIN users u ON u.id = m.user_id
WHERE m.client_id = $1 AND m.user_id = $2;

-- name: scim_user_name_taken
SELECT EXISTS (
    SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id
    WHERE m.client_id = $1 AND m.user_id <> $3 AND lower(coalesce(m.scim_user_name, u.email)) = lower($2)
);

-- name: scim_insert_membership
-- NULL when the person is already a member of the workspace.
INSERT INTO memberships (client_id, user_id, role, scim_user_name, scim_external_id, scim_attributes,
                         deactivated_at)
VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $7::bool THEN NULL ELSE now() END)
ON CONFLICT (client_id, user_id) DO NOTHING
RETURNING user_id;

-- name: scim_update_membership
-- Deactivation keeps the first time it happened; reactivation clears it.
UPDATE memberships SET role = $3, scim_user_name = $4, scim_external_id = $5, scim_attributes = $6,
       deactivated_at = CASE WHEN $7::bool THEN NULL ELSE coalesce(deactivated_at, now()) END,
       updated_at = now()
WHERE client_id = $1 AND user_id = $2;
