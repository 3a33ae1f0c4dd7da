-- 001: tenants, keys, endpoints, events, tasks, attempts, shard leases.
-- Every tenant-owned row carries client_id (and project_id / sub_account_id where the API scopes by them).

CREATE TABLE mittr_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE clients (
    id            uuid PRIMARY KEY,
    name          text NOT NULL,
    monthly_quota bigint,                       -- NULL = unlimited (the self-hosted default)
    signing_secret text NOT NULL,               -- signs direct (destination) deliveries
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE projects (
    id          uuid PRIMARY KEY,
    client_id   uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    name        text NOT NULL,
    environment text NOT NULL DEFAULT 'production',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX projects_client ON projects (client_id);

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    client_id    uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    project_id   uuid,
    name         text NOT NULL,
    key_prefix   text NOT NULL,
    key_hash     bytea NOT NULL UNIQUE,         -- SHA-256 of the key; the key itself is never stored
    scopes       text[] NOT NULL DEFAULT '{}',  -- empty = every scope (an admin key)
    rate_limit   integer,                       -- requests/s; NULL = api.default_rate_limit
    is_active    boolean NOT NULL DEFAULT true,
    expires_at   timestamptz,
    last_used_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_client ON api_keys (client_id, created_at DESC);

CREATE TABLE endpoints (
    id                 uuid PRIMARY KEY,
    client_id          uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    project_id         uuid,
    sub_account_id     uuid,
    url                text NOT NULL,
    event_types        text[] NOT NULL,
    description        text NOT NULL DEFAULT '',
    filter             jsonb,
    transformation     text,
    fifo               boolean NOT NULL DEFAULT false,
    fifo_partition_key text,
    max_retries        integer NOT NULL DEFAULT 5,
    retry_backoff_ms   integer NOT NULL DEFAULT 1000,
    retry_backoff_max  bigint NOT NULL DEFAULT 86400000,
    retry_backoff_mult double precision NOT NULL DEFAULT 2.0,
    timeout_ms         integer NOT NULL DEFAULT 30000,
    rate_limit_per_sec integer NOT NULL DEFAULT 0,
    circuit_threshold  integer NOT NULL DEFAULT 5,
    circuit_reset_ms   integer NOT NULL DEFAULT 300000,
    custom_headers     jsonb NOT NULL DEFAULT '{}',
    allowed_cidrs      text[] NOT NULL DEFAULT '{}',
    blocked_cidrs      text[] NOT NULL DEFAULT '{}',
    delivery_mode      text NOT NULL DEFAULT 'push',
    storage_config     jsonb,
    signing_secret     text NOT NULL,
    mtls_cert          text,
    mtls_key           text,
    status             text NOT NULL DEFAULT 'active',   -- active | paused
    circuit_state      text NOT NULL DEFAULT 'closed',   -- closed | open | half_open
    circuit_opened_at  timestamptz,
    version            integer NOT NULL DEFAULT 1,
    partition          integer NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    deleted_at         timestamptz
);
CREATE INDEX endpoints_client_list ON endpoints (client_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;

CREATE TABLE events (
    id              uuid PRIMARY KEY,
    client_id       uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    project_id      uuid,
    sub_account_id  uuid,
    idempotency_key text NOT NULL,
    event_type      text,
    destination     text,
    payload         bytea NOT NULL,                 -- the exact JSON bytes that are delivered
    headers         jsonb NOT NULL DEFAULT '{}',
    max_attempts    integer NOT NULL,
    priority        smallint NOT NULL,
    delay_seconds   integer NOT NULL DEFAULT 0,
    status          text NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    task_count      integer NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    CONSTRAINT events_idempotency UNIQUE (client_id, idempotency_key)
);
CREATE INDEX events_client_list ON events (client_id, created_at DESC, id DESC);
CREATE INDEX events_client_status ON events (client_id, status, created_at DESC, id DESC);

CREATE SEQUENCE task_seq;

-- One delivery of one event to one target (an endpoint, or the event's direct destination).
CREATE TABLE tasks (
    id              uuid PRIMARY KEY,
    event_id        uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    client_id       uuid NOT NULL,
    endpoint_id     uuid,                           -- NULL for a direct destination
    partition       integer NOT NULL,
    seq             bigint NOT NULL DEFAULT nextval('task_seq'),  -- creation order, for FIFO
    status          text NOT NULL,                  -- queued | delivering | delivered | failed | dead
    attempts        integer NOT NULL DEFAULT 0,
    max_attempts    integer NOT NULL,
    priority        smallint NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    claim_epoch     bigint,                         -- lease epoch of the shard holding it; fences writes
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz
);
-- Claimable work only: the claim reads nothing else.
CREATE INDEX tasks_claimable ON tasks (partition, priority, next_attempt_at)
    WHERE status IN ('queued', 'failed') AND claim_epoch IS NULL;
CREATE INDEX tasks_held ON tasks (partition, claim_epoch) WHERE claim_epoch IS NOT NULL;
CREATE INDEX tasks_event ON tasks (event_id);
CREATE INDEX tasks_endpoint_open ON tasks (endpoint_id)
    WHERE endpoint_id IS NOT NULL AND status IN ('queued', 'delivering', 'failed');

CREATE TABLE delivery_attempts (
    id                     uuid NOT NULL,
    task_id                uuid NOT NULL,
    event_id               uuid NOT NULL,
    client_id              uuid NOT NULL,
    project_id             uuid,
    endpoint_id            uuid,
    event_type             text,
    attempt_number         integer NOT NULL,
    status_code            integer,                -- NULL when no response came back
    response_body          text NOT NULL DEFAULT '',
    error                  text NOT NULL DEFAULT '',
    error_category         text,                   -- timeout | 4xx | 5xx | dns | tls | refused | blocked
    outcome                text NOT NULL,          -- success | failure | timeout
    duration_ms            integer NOT NULL,
    processing_overhead_us integer NOT NULL,
    attempted_at           timestamptz NOT NULL,
    PRIMARY KEY (id, attempted_at)
) PARTITION BY RANGE (attempted_at);
CREATE TABLE delivery_attempts_default PARTITION OF delivery_attempts DEFAULT;
CREATE INDEX delivery_attempts_event ON delivery_attempts (event_id, attempted_at);
CREATE INDEX delivery_attempts_client ON delivery_attempts (client_id, attempted_at DESC, id DESC);

-- Day partitions for attempts, made ahead of time; retention drops whole days.
CREATE FUNCTION mittr_ensure_attempt_partitions(first_day date, days integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    d date;
    made integer := 0;
    name text;
BEGIN
    FOR i IN 0 .. days - 1 LOOP
        d := first_day + i;
        name := 'delivery_attempts_' || to_char(d, 'YYYYMMDD');
        IF to_regclass(name) IS NULL THEN
            BEGIN
                EXECUTE format('CREATE TABLE %I PARTITION OF delivery_attempts FOR VALUES FROM (%L) TO (%L)',
                               name, d::timestamptz, (d + 1)::timestamptz);
                made := made + 1;
            EXCEPTION WHEN check_violation THEN
                -- rows for that day already sit in the default partition; leave them there
                NULL;
            END;
        END IF;
    END LOOP;
    RETURN made;
END;
$$;

CREATE SEQUENCE lease_epoch_seq;

-- Ownership of a partition range by one shard. Every write a shard makes is fenced by its epoch.
CREATE TABLE shard_leases (
    slot       text PRIMARY KEY,                   -- "lo-hi"
    lo         integer NOT NULL,
    hi         integer NOT NULL,
    owner      text NOT NULL,
    epoch      bigint NOT NULL,
    expires_at timestamptz NOT NULL,
    renewed_at timestamptz NOT NULL DEFAULT now()
);
