-- name: saml_insert_connection
-- NULL when the workspace already has a connection with this slug.
INSERT INTO saml_connections (id, client_id, slug, name, idp_entity_id, idp_sso_url, idp_certs, metadata_url,
                              require_sso, default_role)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (client_id, slug) DO NOTHING
RETURNING *, ARRAY[]::text[] AS email_domains;

-- name: saml_get_connection
SELECT c.*, array(SELECT d.domain FROM saml_domains d WHERE d.connection_id = c.id ORDER BY d.domain) AS email_domains
FROM saml_connections c WHERE c.id = $1 AND c.client_id = $2;

-- name: saml_lock_connection
SELECT c.*, array(SELECT d.domain FROM saml_domains d WHERE d.connection_id = c.id ORDER BY d.domain) AS email_domains
FROM saml_connections c WHERE c.id = $1 AND c.client_id = $2 FOR UPDATE;

-- name: saml_connection_by_slug
SELECT * FROM saml_connections WHERE client_id = $1 AND slug = $2;

-- name: saml_list_connections
SELECT c.*, array(SELECT d.domain FROM saml_domains d WHERE d.connection_id = c.id ORDER BY d.domain) AS email_domains
FROM saml_connections c
WHERE c.client_id = $1
  AND ($2::timestamptz IS NULL OR (c.created_at, c.id) < ($2, $3::uuid))
ORDER BY c.created_at DESC, c.id DESC
LIMIT $4;

-- name: saml_update_connection
-- NULL when the new slug is taken in the workspace (checked by the caller first).
UPDATE saml_connections
SET slug = $3, name = $4, idp_entity_id = $5, idp_sso_url = $6, idp_certs = $7, metadata_url = $8,
    require_sso = $9, default_role = $10, updated_at = now()
WHERE id = $1 AND client_id = $2
RETURNING id;

-- name: saml_slug_taken
SELECT EXISTS (SELECT 1 FROM saml_connections WHERE client_id = $1 AND slug = $2 AND id <> $3);

-- name: saml_delete_connection
DELETE FROM saml_connections WHERE id = $1 AND client_id = $2 RETURNING id;

-- name: saml_domains_taken
-- Which of these domains another connection (of any workspace) already signs in.
SELECT domain FROM saml_domains WHERE domain = ANY($1::text[]) AND connection_id <> $2 ORDER BY domain;

-- name: saml_clear_domains
DELETE FROM saml_domains WHERE connection_id = $1;

-- name: saml_insert_domains
INSERT INTO saml_domains (domain, connection_id, client_id) SELECT unnest($1::text[]), $2, $3;

-- name: saml_discover
-- The connection that signs in this e-mail domain.
SELECT c.id, c.client_id, c.slug, c.require_sso
FROM saml_domains d JOIN saml_connections c ON c.id = d.connection_id
WHERE d.domain = $1;

-- name: saml_connection_domains
SELECT array(SELECT domain FROM saml_domains WHERE connection_id = $1);

-- name: saml_sso_required
SELECT EXISTS (SELECT 1 FROM saml_connections WHERE client_id = $1 AND require_sso);

-- name: saml_insert_request
INSERT INTO saml_requests (id, connection_id, relay_state, expires_at)
VALUES ($1, $2, $3, now() + make_interval(secs => $4));

-- name: saml_peek_request
-- The AuthnRequest a response answers, while it may still be answered.
SELECT relay_state FROM saml_requests WHERE id = $1 AND connection_id = $2 AND expires_at > now();

-- name: saml_take_request
-- Answered once: the first response to use it removes it.
DELETE FROM saml_requests WHERE id = $1 AND connection_id = $2 AND expires_at > now() RETURNING relay_state;

-- name: saml_consume_assertion
-- NULL when this assertion was used already (a replay).
INSERT INTO saml_consumed_assertions (connection_id, assertion_id, expires_at) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING
RETURNING assertion_id;

-- name: saml_prune_requests
DELETE FROM saml_requests WHERE expires_at < now();

-- name: saml_prune_assertions
DELETE FROM saml_consumed_assertions WHERE expires_at < now();
