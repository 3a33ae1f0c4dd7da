-- name: team_members
-- One keyset page of a workspace's members, oldest membership first (whoever set it up on top).
SELECT u.id, u.email, u.name, u.email_verified_at, m.role, m.created_at, m.deactivated_at
FROM memberships m
JOIN users u ON u.id = m.user_id
WHERE m.client_id = $1
  AND ($2::timestamptz IS NULL OR (m.created_at, u.id) > ($2, $3::uuid))
ORDER BY m.created_at, u.id
LIMIT $4;

-- name: team_invitations
-- Invitations not accepted yet, expired ones included (they can be sent again or revoked).
SELECT id, email, role, created_at, expires_at
FROM auth_tokens
WHERE client_id = $1 AND kind = 'invite' AND used_at IS NULL
ORDER BY created_at DESC, id DESC;

-- name: count_other_open_invitations
SELECT count(*) FROM auth_tokens WHERE client_id = $1 AND kind = 'invite' AND used_at IS NULL AND email <> $2;

-- name: member_by_email
SELECT m.user_id FROM memberships m JOIN users u ON u.id = m.user_id
WHERE m.client_id = $1 AND u.email = $2;

-- name: upsert_invitation
-- One open invitation per workspace and address: inviting again replaces its token, role and expiry.
INSERT INTO auth_tokens (token_hash, kind, client_id, email, role, invited_by, expires_at)
VALUES ($1, 'invite', $2, $3, $4, $5, now() + make_interval(secs => $6))
ON CONFLICT (client_id, email) WHERE kind = 'invite' AND used_at IS NULL
DO UPDATE SET token_hash = EXCLUDED.token_hash, role = EXCLUDED.role, invited_by = EXCLUDED.invited_by,
              created_at = now(), expires_at = EXCLUDED.expires_at
RETURNING id, email, role, created_at, expires_at;

-- name: delete_open_invitation
DELETE FROM auth_tokens WHERE id = $1 AND client_id = $2 AND kind = 'invite' AND used_at IS NULL
RETURNING id, email, role, created_at, expires_at;

-- name: invitation_by_token
-- Locked: accepting reads it, then uses it up, and two accepts of one link must not both succeed.
SELECT t.id, t.client_id, t.email, t.role, t.expires_at, t.used_at, c.name AS workspace_name,
       EXISTS (SELECT 1 FROM users u WHERE u.email = t.email) AS account_exists
FROM auth_tokens t
JOIN clients c ON c.id = t.client_id AND c.deleted_at IS NULL
WHERE t.token_hash = $1 AND t.kind = 'invite'
FOR UPDATE OF t;

-- name: use_invitation
UPDATE auth_tokens SET used_at = now(), user_id = $2 WHERE id = $1;

-- name: add_member_if_absent
INSERT INTO memberships (client_id, user_id, role) VALUES ($1, $2, $3)
ON CONFLICT (client_id, user_id) DO NOTHING
RETURNING created_at;

-- name: lock_workspace_admins
-- Every active admin membership of the workspace, locked in one order: a demotion or removal that
-- checks "another active admin remains" under these locks cannot race another one (two admins
-- demoting each other): the second waits, then sees the first's change. An admin SCIM deactivated
-- (deactivated_at) cannot sign in, so it does not count as one who remains; a deactivation that
-- commits while this waits is seen (the row no longer qualifies once the lock is granted).
SELECT user_id FROM memberships
WHERE client_id = $1 AND role = 'admin' AND deactivated_at IS NULL
ORDER BY user_id FOR UPDATE;

-- name: lock_member
SELECT u.id, u.email, u.name, u.email_verified_at, m.role, m.created_at, m.deactivated_at
FROM memberships m
JOIN users u ON u.id = m.user_id
WHERE m.client_id = $1 AND m.user_id = $2
FOR UPDATE OF m;

-- name: set_member_role
UPDATE memberships SET role = $3 WHERE client_id = $1 AND user_id = $2;

-- name: delete_membership
DELETE FROM memberships WHERE client_id = $1 AND user_id = $2;
