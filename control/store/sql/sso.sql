-- name: sso_identity_user
-- The account a provider's person is linked to.
SELECT u.id, u.email, u.name, u.password_hash, u.email_verified_at, u.created_at
FROM sso_identities i
JOIN users u ON u.id = i.user_id
WHERE i.provider = $1 AND i.subject = $2;

-- name: sso_link_identity
-- Link (or refresh) a provider's person to an account; `linked` is true when the link is new.
INSERT INTO sso_identities AS i (provider, subject, user_id, email) VALUES ($1, $2, $3, $4)
ON CONFLICT (provider, subject) DO UPDATE SET email = EXCLUDED.email, last_login_at = now()
RETURNING (xmax = 0) AS linked;

-- name: sso_user_by_email_locked
-- The account with this address, locked: two first sign-ins of one person must not both link it.
SELECT id, email, name, password_hash, email_verified_at, created_at FROM users WHERE email = $1 FOR UPDATE;

-- name: sso_membership
SELECT m.client_id, m.role, c.name AS workspace_name
FROM memberships m
JOIN clients c ON c.id = m.client_id AND c.deleted_at IS NULL
WHERE m.client_id = $1 AND m.user_id = $2;

-- name: sso_pending_invitation
-- The newest open, unexpired invitation for the address (in one workspace when $2 is given), locked
-- so that it is used once.
SELECT t.id, t.client_id, t.role, c.name AS workspace_name
FROM auth_tokens t
JOIN clients c ON c.id = t.client_id AND c.deleted_at IS NULL
WHERE t.kind = 'invite' AND t.used_at IS NULL AND t.expires_at > now() AND t.email = $1
  AND ($2::uuid IS NULL OR t.client_id = $2)
ORDER BY t.created_at DESC, t.id
LIMIT 1
FOR UPDATE OF t;

-- name: sso_insert_state
-- A new sign-in's state; states that ended more than an hour ago are cleared on the way.
WITH cleared AS (DELETE FROM sso_states WHERE expires_at < now() - interval '1 hour')
INSERT INTO sso_states (state_hash, browser_hash, provider, code_verifier, nonce_hash, next_path, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7));

-- name: sso_spend_state
-- Spends a live state of this provider and browser: of two concurrent uses exactly one gets the row.
UPDATE sso_states SET used_at = now()
WHERE state_hash = $1 AND browser_hash = $2 AND provider = $3 AND used_at IS NULL AND expires_at > now()
RETURNING code_verifier, nonce_hash, next_path;

-- name: sso_state_status
-- Why a state could not be spent (unknown, another browser or provider, used, expired).
SELECT provider, browser_hash, used_at IS NOT NULL AS used, expires_at <= now() AS expired
FROM sso_states WHERE state_hash = $1;
