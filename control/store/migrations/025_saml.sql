-- 025: SAML 2.0 single sign-on, one or more IdP connections per workspace.
-- A connection names the IdP (entity id, SSO URL, signing certificates, read from its metadata XML
-- or metadata URL), the e-mail domains it signs in, whether the workspace's members must use it,
-- and the role a new member gets. AuthnRequests in flight are remembered (InResponseTo), and every
-- consumed assertion id is kept until its NotOnOrAfter has passed (replay protection).

CREATE TABLE saml_connections (
    id            uuid PRIMARY KEY,
    client_id     uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    slug          text NOT NULL,                   -- in the SP URLs: /auth/sso/saml/<client>/<slug>/...
    name          text NOT NULL DEFAULT '',
    idp_entity_id text NOT NULL,
    idp_sso_url   text NOT NULL,                   -- the IdP's HTTP-Redirect SingleSignOnService
    idp_certs     text[] NOT NULL,                 -- signing certificates, PEM
    metadata_url  text,                            -- where the IdP's metadata was fetched from, if it was
    require_sso   boolean NOT NULL DEFAULT false,  -- members may not log in with a password
    default_role  text NOT NULL DEFAULT 'viewer' CHECK (default_role IN ('admin', 'editor', 'viewer')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT saml_connections_slug UNIQUE (client_id, slug)
);
CREATE INDEX saml_connections_list ON saml_connections (client_id, created_at DESC, id DESC);
CREATE INDEX saml_connections_required ON saml_connections (client_id) WHERE require_sso;

-- E-mail domains a connection signs in (discovery: /auth/sso/discover?email=). A domain belongs to
-- one connection on the whole server, so discovery has one answer.
CREATE TABLE saml_domains (
    domain        text PRIMARY KEY,                -- lower-case, no trailing dot
    connection_id uuid NOT NULL REFERENCES saml_connections (id) ON DELETE CASCADE,
    client_id     uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE
);
CREATE INDEX saml_domains_connection ON saml_domains (connection_id);

-- AuthnRequests sent and not yet answered: the response's InResponseTo must name one of them, once.
CREATE TABLE saml_requests (
    id            text PRIMARY KEY,                -- the AuthnRequest's ID
    connection_id uuid NOT NULL REFERENCES saml_connections (id) ON DELETE CASCADE,
    relay_state   text NOT NULL,                   -- a relative path on this server
    expires_at    timestamptz NOT NULL
);
CREATE INDEX saml_requests_expires ON saml_requests (expires_at);

-- Assertions already used to sign in; kept until NotOnOrAfter, after which pysaml2 refuses them anyway.
CREATE TABLE saml_consumed_assertions (
    connection_id uuid NOT NULL REFERENCES saml_connections (id) ON DELETE CASCADE,
    assertion_id  text NOT NULL,
    expires_at    timestamptz NOT NULL,
    PRIMARY KEY (connection_id, assertion_id)
);
CREATE INDEX saml_consumed_assertions_expires ON saml_consumed_assertions (expires_at);
