-- name: session_by_hash
-- A live session with what it acts as: a member's role, or the API key it was made from.
SELECT s.id, s.client_id, s.user_id, s.key_id, s.expires_at, s.last_seen_at, u.email,
       m.role, k.scopes, k.rate_limit, k.project_id AS key_project_id, k.key_prefix,
       (k.id IS NULL OR (k.is_active AND k.deleted_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())))
           AS key_ok
FROM sessions s
LEFT JOIN users u ON u.id = s.user_id
LEFT JOIN memberships m ON m.client_id = s.client_id AND m.user_id = s.user_id
LEFT JOIN api_keys k ON k.id = s.key_id
JOIN clients c ON c.id = s.client_id AND c.deleted_at IS NULL
WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > now();

-- name: insert_session
INSERT INTO sessions (id, token_hash, user_id, client_id, key_id, ip, user_agent, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8))
RETURNING id, created_at, expires_at;

-- name: touch_session
-- Sliding expiry: a session in use is extended (at most once a minute per session).
UPDATE sessions SET last_seen_at = now(), expires_at = greatest(expires_at, now() + make_interval(secs => $2))
WHERE id = $1 AND revoked_at IS NULL;

-- name: revoke_session
UPDATE sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL;

-- name: revoke_user_sessions
UPDATE sessions SET revoked_at = now()
WHERE user_id = $1 AND ($2::uuid IS NULL OR client_id = $2) AND revoked_at IS NULL;

-- name: insert_user
INSERT INTO users (id, email, name, password_hash, email_verified_at)
VALUES ($1, $2, $3, $4, CASE WHEN $5::bool THEN now() END)
RETURNING id, email, name, password_hash, email_verified_at, created_at;

-- name: user_by_email
SELECT id, email, name, password_hash, email_verified_at, created_at FROM users WHERE email = $1;

-- name: upsert_membership
INSERT INTO memberships (client_id, user_id, role) VALUES ($1, $2, $3)
ON CONFLICT (client_id, user_id) DO UPDATE SET role = EXCLUDED.role;
