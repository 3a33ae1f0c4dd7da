-- 004: event types (with optional JSON schemas) and endpoint configuration versions.

CREATE TABLE event_types (
    id             uuid PRIMARY KEY,
    client_id      uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    project_id     uuid,
    name           text NOT NULL,
    description    text NOT NULL DEFAULT '',
    schema         jsonb,                       -- a JSON Schema the payloads of this type must satisfy
    schema_version text,
    revision       integer NOT NULL DEFAULT 1,  -- bumped by every update: keys the compiled-validator cache
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
-- One name per client and project (NULL project = the client's unscoped types).
CREATE UNIQUE INDEX event_types_name
    ON event_types (client_id, COALESCE(project_id, '00000000-0000-0000-0000-000000000000'::uuid), name);
CREATE INDEX event_types_client_list ON event_types (client_id, created_at DESC, id DESC);

-- One row per configuration version of an endpoint: its configuration columns at that version,
-- without secrets or runtime state. Written by a trigger whenever endpoints.version changes, so
-- every path that changes the configuration (create, PATCH, rollback, mTLS, key rotation) records
-- its version in the same transaction.
CREATE TABLE endpoint_versions (
    endpoint_id uuid NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    version     integer NOT NULL,
    client_id   uuid NOT NULL,
    snapshot    jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (endpoint_id, version)
);

CREATE FUNCTION mittr_endpoint_snapshot(e endpoints) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT to_jsonb(e) - ARRAY[
        -- secrets (sealed or not, they never leave the endpoints row)
        'signing_secret', 'mtls_key', 'sw_ed25519_private',
        -- identity and runtime state, not configuration
        'id', 'client_id', 'project_id', 'sub_account_id', 'status', 'circuit_state',
        'circuit_opened_at', 'partition', 'version', 'created_at', 'updated_at', 'deleted_at']
$$;

CREATE FUNCTION mittr_record_endpoint_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO endpoint_versions (endpoint_id, version, client_id, snapshot, created_at)
    VALUES (NEW.id, NEW.version, NEW.client_id, mittr_endpoint_snapshot(NEW), NEW.updated_at)
    ON CONFLICT (endpoint_id, version) DO NOTHING;
    RETURN NULL;
END;
$$;

CREATE TRIGGER endpoints_version_created AFTER INSERT ON endpoints
    FOR EACH ROW EXECUTE FUNCTION mittr_record_endpoint_version();
CREATE TRIGGER endpoints_version_changed AFTER UPDATE OF version ON endpoints
    FOR EACH ROW WHEN (OLD.version IS DISTINCT FROM NEW.version)
    EXECUTE FUNCTION mittr_record_endpoint_version();

-- Endpoints made before this migration start their history at their current version.
INSERT INTO endpoint_versions (endpoint_id, version, client_id, snapshot, created_at)
SELECT e.id, e.version, e.client_id, mittr_endpoint_snapshot(e), e.updated_at
FROM endpoints e;
