-- name: insert_sub_account
-- NULL when the workspace already has this subID.
INSERT INTO sub_accounts (id, client_id, name, sub_id, metadata)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (client_id, sub_id) DO NOTHING
RETURNING *;

-- name: get_sub_account
SELECT * FROM sub_accounts WHERE id = $1 AND client_id = $2;

-- name: lock_sub_account
SELECT * FROM sub_accounts WHERE id = $1 AND client_id = $2 FOR UPDATE;

-- name: list_sub_accounts
SELECT * FROM sub_accounts
WHERE client_id = $1
  AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $4;

-- name: update_sub_account
-- NULL when the new subID is taken (the unique constraint is checked by the caller first).
UPDATE sub_accounts SET name = $3, sub_id = $4, metadata = $5, updated_at = now()
WHERE id = $1 AND client_id = $2
RETURNING *;

-- name: sub_id_taken
SELECT EXISTS (SELECT 1 FROM sub_accounts WHERE client_id = $1 AND sub_id = $2 AND id <> $3);

-- name: deactivate_sub_account
UPDATE sub_accounts SET deactivated_at = coalesce(deactivated_at, now()), updated_at = now()
WHERE id = $1 AND client_id = $2
RETURNING *;

-- name: sub_account_state
-- What a request naming a sub-account needs: that it is this workspace's, and whether it is active.
SELECT id, sub_id, deactivated_at IS NULL AS active FROM sub_accounts WHERE id = $1 AND client_id = $2;

-- name: insert_portal_session
INSERT INTO portal_sessions (id, client_id, sub_account_id, exchange_hash, exchange_expires_at, return_url,
                             idle_seconds)
VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5), $6, $7)
RETURNING *;

-- name: list_portal_sessions
SELECT * FROM portal_sessions
WHERE sub_account_id = $1 AND client_id = $2
  AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $5;

-- name: revoke_portal_session
UPDATE portal_sessions SET revoked_at = coalesce(revoked_at, now())
WHERE id = $1 AND sub_account_id = $2 AND client_id = $3
RETURNING *;

-- name: revoke_portal_sessions
UPDATE portal_sessions SET revoked_at = now()
WHERE sub_account_id = $1 AND client_id = $2 AND revoked_at IS NULL
RETURNING id;

-- name: exchange_portal_token
-- Single use: the first exchange of a live, unrevoked token sets the session token; any later one
-- (or one after expiry, or for a deactivated sub-account) finds nothing.
UPDATE portal_sessions p SET token_hash = $2, exchanged_at = now(), last_seen_at = now(),
    expires_at = now() + make_interval(secs => p.idle_seconds)
FROM sub_accounts s
WHERE p.exchange_hash = $1 AND p.exchanged_at IS NULL AND p.revoked_at IS NULL
  AND p.exchange_expires_at > now() AND s.id = p.sub_account_id AND s.deactivated_at IS NULL
RETURNING p.*, s.name AS sub_account_name, s.sub_id;

-- name: portal_session_by_hash
-- A live session, its expiry slid forward by its idle window (sliding refresh), in one statement.
UPDATE portal_sessions p SET last_seen_at = now(), expires_at = now() + make_interval(secs => p.idle_seconds)
FROM sub_accounts s, clients c
WHERE p.token_hash = $1 AND p.revoked_at IS NULL AND p.expires_at > now()
  AND s.id = p.sub_account_id AND s.deactivated_at IS NULL
  AND c.id = p.client_id AND c.deleted_at IS NULL
RETURNING p.*, s.name AS sub_account_name, s.sub_id;
