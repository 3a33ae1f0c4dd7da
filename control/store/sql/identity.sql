-- name: session_by_hash
-- A live session with what it acts as: a member's role, or the API key it was made from.
-- A membership deactivated through SCIM (migration 026) acts as no member at all.
SELECT s.id, s.client_id, s.user_id, s.key_id, s.expires_at, s.last_seen_at, u.email,
       m.role, k.scopes, k.rate_limit, k.project_id AS key_project_id, k.key_prefix,
       (k.id IS NULL OR (k.is_active AND k.deleted_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())))
           AS key_ok
FROM sessions s
LEFT JOIN users u ON u.id = s.user_id
LEFT JOIN memberships m ON m.client_id = s.client_id AND m.user_id = s.user_id AND m.deactivated_at IS NULL
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

-- name: auth_memberships
-- The workspaces a person may log in to, oldest membership first (the default one).
SELECT m.client_id, m.role, c.name AS workspace_name
FROM memberships m
JOIN clients c ON c.id = m.client_id AND c.deleted_at IS NULL
WHERE m.user_id = $1 AND m.deactivated_at IS NULL
ORDER BY m.created_at, m.client_id;

-- name: auth_workspace
SELECT id, name FROM clients WHERE id = $1 AND deleted_at IS NULL;

-- name: auth_insert_token
INSERT INTO auth_tokens (token_hash, kind, client_id, user_id, email, expires_at)
VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))
RETURNING expires_at;

-- name: auth_peek_token
-- A live e-mailed token, not used up (reset-password needs its address before it spends it).
SELECT user_id, client_id, email FROM auth_tokens
WHERE token_hash = $1 AND kind = $2 AND used_at IS NULL AND expires_at > now();

-- name: auth_use_token
-- Spends a live token: of two concurrent uses exactly one gets the row.
UPDATE auth_tokens SET used_at = now()
WHERE token_hash = $1 AND kind = $2 AND used_at IS NULL AND expires_at > now()
RETURNING user_id, client_id, email;

-- name: auth_retire_tokens
-- Every other open link of that kind for the person stops working too.
UPDATE auth_tokens SET used_at = now() WHERE user_id = $1 AND kind = $2 AND used_at IS NULL;

-- name: auth_verify_email
-- Only while the account still has the address the link was sent to.
UPDATE users SET email_verified_at = coalesce(email_verified_at, now()), updated_at = now()
WHERE id = $1 AND email = $2
RETURNING id, email, name, email_verified_at;

-- name: auth_set_password
-- A reset link proves the address as well.
UPDATE users SET password_hash = $3, email_verified_at = coalesce(email_verified_at, now()), updated_at = now()
WHERE id = $1 AND email = $2
RETURNING id, email, name, email_verified_at;

-- name: auth_session
-- What GET /auth/session shows about a session.
SELECT s.id, s.created_at, s.expires_at, s.client_id, c.name AS workspace_name,
       s.user_id, u.email, u.name, u.email_verified_at, m.role,
       s.key_id, k.name AS key_name, k.key_prefix, k.scopes, k.project_id AS key_project_id
FROM sessions s
JOIN clients c ON c.id = s.client_id
LEFT JOIN users u ON u.id = s.user_id
LEFT JOIN memberships m ON m.client_id = s.client_id AND m.user_id = s.user_id
LEFT JOIN api_keys k ON k.id = s.key_id
WHERE s.id = $1;

-- name: login_throttle_take
-- One attempt against each counter (a counter whose window has passed starts a new one); returns
-- the attempts in the window and the seconds left in it. Keys come in a fixed order (e-mail, then
-- address), so concurrent takes never deadlock.
INSERT INTO login_throttle AS t (key, window_start, failures)
SELECT k, now(), 1 FROM unnest($1::text[]) AS k
ON CONFLICT (key) DO UPDATE SET
    window_start = CASE WHEN t.window_start <= now() - make_interval(secs => $2) THEN now() ELSE t.window_start END,
    failures = CASE WHEN t.window_start <= now() - make_interval(secs => $2) THEN 1 ELSE t.failures + 1 END
RETURNING key, failures,
          extract(epoch FROM (window_start + make_interval(secs => $2) - now()))::float8 AS remaining_s;

-- name: login_throttle_forgive
-- A successful login: its e-mail's counter restarts and its address's attempt is given back.
WITH cleared AS (DELETE FROM login_throttle WHERE key = $1)
UPDATE login_throttle SET failures = greatest(failures - 1, 0) WHERE key = $2;

-- name: login_throttle_prune
DELETE FROM login_throttle WHERE window_start <= now() - make_interval(secs => $1);
