-- 005: pull delivery (poll mode), statistics, rate-limit figures, per-minute delivery rollups.

-- Poll mode: a task handed to a consumer stays hidden until poll_visible_at and is offered again
-- unless acknowledged first. poll_taken_at is when it was last handed out (an ack's durationMs
-- counts from it). Both stay NULL for pushed deliveries.
ALTER TABLE tasks
    ADD COLUMN poll_taken_at timestamptz,
    ADD COLUMN poll_visible_at timestamptz;

-- Queue depth per tenant (GET /api/v1/stats, every second on the WebSocket): an index-only count
-- of the open states only, so finished work never weighs on it.
CREATE INDEX tasks_client_open ON tasks (client_id, status)
    WHERE status IN ('queued', 'delivering', 'failed');

-- Delivery rollups: one row per tenant, minute, endpoint and project with the counts the analytics
-- read, kept by the engine's outcome writer (and poll acks) in the transaction that records the
-- attempts. endpoint_id / project_id hold the nil uuid for direct deliveries / events without a
-- project, so that the key has no NULLs. latency_hist counts attempts per durationMs bucket; the
-- bucket bounds are LATENCY_BOUNDS_MS in control/services/rollups.py (the last bucket is unbounded).
CREATE TABLE delivery_rollups (
    client_id       uuid NOT NULL,
    minute          timestamptz NOT NULL,          -- start of the UTC minute the attempts were made in
    endpoint_id     uuid NOT NULL,
    project_id      uuid NOT NULL,
    attempts        bigint NOT NULL DEFAULT 0,
    successes       bigint NOT NULL DEFAULT 0,     -- outcome success
    failures        bigint NOT NULL DEFAULT 0,     -- outcome failure
    timeouts        bigint NOT NULL DEFAULT 0,     -- outcome timeout
    delivered       bigint NOT NULL DEFAULT 0,     -- deliveries that ended delivered
    dead            bigint NOT NULL DEFAULT 0,     -- deliveries that ended dead
    err_timeout     bigint NOT NULL DEFAULT 0,     -- failed attempts by error category
    err_4xx         bigint NOT NULL DEFAULT 0,
    err_5xx         bigint NOT NULL DEFAULT 0,
    err_dns         bigint NOT NULL DEFAULT 0,
    err_tls         bigint NOT NULL DEFAULT 0,
    err_refused     bigint NOT NULL DEFAULT 0,
    err_other       bigint NOT NULL DEFAULT 0,     -- blocked (SSRF), 3xx, anything else
    duration_sum_ms bigint NOT NULL DEFAULT 0,
    duration_max_ms integer NOT NULL DEFAULT 0,
    latency_hist    bigint[] NOT NULL,
    PRIMARY KEY (client_id, minute, endpoint_id, project_id)
);

-- What each shard reports every second (engine/stats.py); rows of shards that stopped reporting
-- are ignored once stale.
CREATE TABLE shard_stats (
    slot            text PRIMARY KEY,              -- "lo-hi", as in shard_leases
    shard_index     integer NOT NULL,
    lo              integer NOT NULL,
    hi              integer NOT NULL,
    owner           text NOT NULL,
    epoch           bigint NOT NULL,
    buffered        integer NOT NULL,
    in_flight       integer NOT NULL,
    delivered_total bigint NOT NULL,               -- since that shard process started
    updated_at      timestamptz NOT NULL
);

-- Live token-bucket and breaker figures of rate-limited (or tripped) endpoints, reported by the
-- shard holding them. Tenancy comes from a join with endpoints.
CREATE TABLE endpoint_limiter_stats (
    endpoint_id     uuid PRIMARY KEY,
    limit_per_sec   integer NOT NULL,
    tokens          double precision,              -- NULL = unlimited
    throttled_total bigint NOT NULL,               -- times the bucket made a send wait, since shard start
    breaker_state   text NOT NULL,
    updated_at      timestamptz NOT NULL
);
