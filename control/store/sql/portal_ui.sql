-- The portal page's own reads: which origins may frame it (the session's returnURL). The session is
-- found by its exchange token's hash (first load) or by its id (a reload after the exchange), in any
-- state: a used or revoked session still frames its expired-state screen on the workspace's page.

-- name: portal_frame_by_exchange
SELECT return_url FROM portal_sessions WHERE exchange_hash = $1;

-- name: portal_frame_by_id
SELECT return_url FROM portal_sessions WHERE id = $1;
