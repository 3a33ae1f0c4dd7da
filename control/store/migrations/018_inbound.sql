-- 018: inbound endpoints. A public POST /inbound/{path_suffix} is verified with the preset's mode
-- (control/policy/inbound_verify.py) and becomes an event of the owning workspace. The path suffix is
-- unique across the server: it alone routes the platform's request. source_config is the JSON of the
-- mode's secrets, sealed with the server's key (control/crypto.py), never stored in clear.

CREATE TABLE inbound_endpoints (
    id                 uuid PRIMARY KEY,
    client_id          uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    project_id         uuid,
    name               text NOT NULL,
    path_suffix        text NOT NULL UNIQUE,
    source             text NOT NULL,
    source_config      text NOT NULL,
    destination_ids    uuid[] NOT NULL DEFAULT '{}',
    event_type_mapping text,
    description        text NOT NULL DEFAULT '',
    transformation     text,
    status             text NOT NULL DEFAULT 'active',   -- active | inactive
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inbound_endpoints_client ON inbound_endpoints (client_id, created_at DESC, id DESC);
