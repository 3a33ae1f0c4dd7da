-- Sub-accounts (a workspace's own customers) and their embedded-portal sessions. Events and
-- endpoints already carry sub_account_id (001); these indexes serve the portal's scoped lists.

CREATE TABLE sub_accounts (
    id             uuid PRIMARY KEY,
    client_id      uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    name           text NOT NULL,
    sub_id         text NOT NULL,                  -- the workspace's own id for its customer
    metadata       jsonb NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    deactivated_at timestamptz,                    -- DELETE: events refused from then on, history kept
    CONSTRAINT sub_accounts_sub_id UNIQUE (client_id, sub_id)
);
CREATE INDEX sub_accounts_client_list ON sub_accounts (client_id, created_at DESC, id DESC);

-- One portal session: minted with a single-use exchange token, then (after the exchange) used
-- with a session token whose expiry slides forward by idle_seconds on use. Both only as SHA-256.
CREATE TABLE portal_sessions (
    id                  uuid PRIMARY KEY,
    client_id           uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    sub_account_id      uuid NOT NULL REFERENCES sub_accounts (id) ON DELETE CASCADE,
    exchange_hash       bytea NOT NULL UNIQUE,
    exchange_expires_at timestamptz NOT NULL,
    token_hash          bytea UNIQUE,
    return_url          text,
    idle_seconds        integer NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    exchanged_at        timestamptz,
    last_seen_at        timestamptz,
    expires_at          timestamptz,
    revoked_at          timestamptz
);
CREATE INDEX portal_sessions_sub_account ON portal_sessions (sub_account_id, created_at DESC, id DESC);

CREATE INDEX events_sub_account_list ON events (client_id, sub_account_id, created_at DESC, id DESC)
    WHERE sub_account_id IS NOT NULL;
CREATE INDEX endpoints_sub_account_list ON endpoints (client_id, sub_account_id, created_at DESC, id DESC)
    WHERE sub_account_id IS NOT NULL AND deleted_at IS NULL;
