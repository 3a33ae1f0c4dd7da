-- 024: single sign-on. A person's accounts at identity providers (Google, GitHub, a configured
-- OIDC provider, a workspace's SAML IdP), each linked to one Mittr account, and the short-lived
-- state of OAuth/OIDC sign-ins in progress (single-use, stored hashed, bound to the browser).

CREATE TABLE sso_identities (
    provider      text NOT NULL,                   -- 'google', 'github', a [sso.oidc.<name>], a SAML key
    subject       text NOT NULL,                   -- the provider's stable id of the person (sub, user id)
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email         text NOT NULL,                   -- the verified address seen at the last sign-in
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_login_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, subject)
);
CREATE INDEX sso_identities_user ON sso_identities (user_id);

CREATE TABLE sso_states (
    state_hash    bytea PRIMARY KEY,               -- SHA-256 of the `state` sent to the provider
    browser_hash  bytea NOT NULL,                  -- SHA-256 of the browser's mittr_sso cookie
    provider      text NOT NULL,
    code_verifier text NOT NULL,                   -- PKCE verifier, sealed with the encryption key
    nonce_hash    bytea,                           -- SHA-256 of the OIDC nonce (NULL for GitHub)
    next_path     text NOT NULL,                   -- where the browser goes after signing in
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz
);
CREATE INDEX sso_states_expires ON sso_states (expires_at);
