-- 026: SCIM v2 provisioning. An identity provider calls /scim/v2 with a bearer token of one
-- workspace (stored only as SHA-256, its prefix shown); it provisions that workspace's members.
-- What SCIM says about a member lives on the membership, not on the person: one account can belong
-- to several workspaces, and one workspace's IdP must not rename or re-address it for the others.

CREATE TABLE scim_tokens (
    id           uuid PRIMARY KEY,
    client_id    uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    name         text NOT NULL,
    token_hash   bytea NOT NULL UNIQUE,
    token_prefix text NOT NULL,                    -- shown in lists, so a token can be recognised
    created_by   uuid,                             -- the user who made it (NULL: an API key)
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX scim_tokens_client ON scim_tokens (client_id, created_at DESC, id DESC);

ALTER TABLE memberships
    ADD COLUMN deactivated_at   timestamptz,       -- SCIM active=false: no login, no session, role kept
    ADD COLUMN scim_user_name   text,              -- the IdP's userName (NULL: the account's e-mail)
    ADD COLUMN scim_external_id text,              -- the IdP's own id for the person
    ADD COLUMN scim_attributes  jsonb,             -- name parts, displayName, emails, roles as the IdP sent them
    ADD COLUMN updated_at       timestamptz NOT NULL DEFAULT now();
-- userName is unique in a workspace (RFC 7643 uniqueness "server", compared case-insensitively).
CREATE UNIQUE INDEX memberships_scim_user_name ON memberships (client_id, lower(scim_user_name))
    WHERE scim_user_name IS NOT NULL;
