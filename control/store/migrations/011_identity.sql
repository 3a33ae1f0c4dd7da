-- 011: people and access. A workspace is a `clients` row; users belong to workspaces through
-- memberships carrying a role; browser sessions, e-mail verification, password reset and team
-- invitations are random tokens stored only as SHA-256; every mutation leaves an audit row.

ALTER TABLE clients
    ADD COLUMN onboarded_at timestamptz,
    ADD COLUMN plan_id      text NOT NULL DEFAULT 'self-hosted',
    ADD COLUMN deleted_at   timestamptz;

ALTER TABLE projects ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

ALTER TABLE api_keys
    ADD COLUMN created_by uuid,                  -- the user who made it (NULL: CLI or first start)
    ADD COLUMN deleted_at timestamptz;

CREATE TABLE users (
    id                uuid PRIMARY KEY,
    email             text NOT NULL,               -- stored lower-case
    name              text NOT NULL DEFAULT '',
    password_hash     text,                        -- argon2id; NULL for accounts that only use SSO
    email_verified_at timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email ON users (email);

CREATE TABLE memberships (
    client_id  uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       text NOT NULL CHECK (role IN ('admin', 'editor', 'viewer')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE sessions (
    id           uuid PRIMARY KEY,
    token_hash   bytea NOT NULL UNIQUE,
    user_id      uuid REFERENCES users (id) ON DELETE CASCADE,
    client_id    uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    key_id       uuid,                             -- a session made from an API key (POST /auth/session)
    ip           text,
    user_agent   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);
CREATE INDEX sessions_user ON sessions (user_id) WHERE revoked_at IS NULL;

-- Single-use tokens sent by e-mail: verify_email, reset_password, invite.
CREATE TABLE auth_tokens (
    token_hash bytea PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('verify_email', 'reset_password', 'invite')),
    client_id  uuid REFERENCES clients (id) ON DELETE CASCADE,
    user_id    uuid REFERENCES users (id) ON DELETE CASCADE,
    email      text NOT NULL,
    role       text CHECK (role IN ('admin', 'editor', 'viewer')),
    invited_by uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX auth_tokens_client ON auth_tokens (client_id, kind) WHERE used_at IS NULL;

-- Failed logins per e-mail and per address, shared by every API worker and host.
CREATE UNLOGGED TABLE login_throttle (
    key          text PRIMARY KEY,                 -- 'email:<address>' or 'ip:<address>'
    window_start timestamptz NOT NULL,
    failures     integer NOT NULL
);

CREATE TABLE audit_logs (
    id          uuid PRIMARY KEY,                  -- time-ordered
    client_id   uuid NOT NULL,
    project_id  uuid,
    actor_type  text NOT NULL CHECK (actor_type IN ('user', 'api_key', 'system')),
    actor_id    uuid,
    actor_label text NOT NULL DEFAULT '',          -- e-mail or key prefix, kept as it was then
    action      text NOT NULL,                     -- create, update, delete, pause, invite, login, ...
    resource    text NOT NULL,                     -- endpoint, event_type, api_key, team_member, ...
    resource_id text,
    ip          text,
    before      jsonb,
    after       jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_logs_client ON audit_logs (client_id, created_at DESC, id DESC);

-- Append-only: rows are never changed, and removed only by a workspace's own GDPR erasure, which
-- says so for its transaction (SET LOCAL mittr.erasing_client = '<client id>').
CREATE FUNCTION mittr_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND OLD.client_id::text = current_setting('mittr.erasing_client', true) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_logs is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_logs_append_only BEFORE UPDATE OR DELETE ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION mittr_audit_append_only();
