-- 022: plans enforced at ingest, subscriptions and invoices (usage, plans and billing).

-- The plan catalogue's event quotas, mirrored from config/plans.toml when the API starts
-- (control/services/plan_sync.py), so that ingest reads the plan without a round trip to Python.
-- The file stays the one source of truth: every start replaces this table's contents with it.
CREATE TABLE plan_quotas (
    plan_id             text PRIMARY KEY,
    monthly_event_quota bigint,                 -- NULL = unlimited
    is_default          boolean NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX plan_quotas_one_default ON plan_quotas (is_default) WHERE is_default;

-- Accepted events are counted against the quota in force: the workspace's own monthly_quota (an
-- operator's override) when set, else its plan's (the default plan when the catalogue does not list
-- clients.plan_id). Otherwise as in 009: unlimited clients spread their count over 32 slots, a
-- quota'd client writes slot 0 under its row lock so the check is exact under concurrency.
CREATE OR REPLACE FUNCTION mittr_count_usage(client uuid, n bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    counted bigint;
BEGIN
    WITH c AS (
        SELECT coalesce(cl.monthly_quota,
                        CASE WHEN p.plan_id IS NOT NULL THEN p.monthly_event_quota
                             ELSE (SELECT d.monthly_event_quota FROM plan_quotas d WHERE d.is_default) END) AS quota,
               date_trunc('month', now() AT TIME ZONE 'UTC')::date AS month
        FROM clients cl LEFT JOIN plan_quotas p ON p.plan_id = cl.plan_id
        WHERE cl.id = client
    )
    INSERT INTO client_usage AS u (client_id, month, slot, events)
    SELECT client, c.month, CASE WHEN c.quota IS NULL THEN pg_backend_pid() % 32 ELSE 0 END, n
    FROM c
    WHERE c.quota IS NULL
       OR n + (SELECT coalesce(sum(o.events), 0) FROM client_usage o
               WHERE o.client_id = client AND o.month = c.month) <= c.quota
    ON CONFLICT (client_id, month, slot) DO UPDATE
        SET events = u.events + EXCLUDED.events, updated_at = now()
        WHERE (SELECT quota FROM c) IS NULL
           OR u.events + EXCLUDED.events
              + (SELECT coalesce(sum(o.events), 0) FROM client_usage o
                 WHERE o.client_id = client AND o.month = u.month AND o.slot <> 0) <= (SELECT quota FROM c)
    RETURNING u.events INTO counted;
    IF counted IS NULL THEN
        RAISE EXCEPTION 'monthly message quota exceeded' USING ERRCODE = 'MT402';
    END IF;
    RETURN counted;
END;
$$;

-- One subscription per workspace (the billing provider's record of it; the manual provider keeps
-- nothing anywhere else). Periods are [current_period_start, current_period_end).
CREATE TABLE subscriptions (
    client_id            uuid PRIMARY KEY REFERENCES clients (id) ON DELETE CASCADE,
    provider             text NOT NULL,
    plan_id              text NOT NULL,
    cycle                text NOT NULL CHECK (cycle IN ('monthly', 'annual')),
    status               text NOT NULL CHECK (status IN ('active', 'canceled')),
    current_period_start timestamptz NOT NULL,
    current_period_end   timestamptz NOT NULL CHECK (current_period_end > current_period_start),
    cancel_at_period_end boolean NOT NULL DEFAULT false,
    scheduled_plan_id    text,
    scheduled_cycle      text CHECK (scheduled_cycle IN ('monthly', 'annual')),
    credit_cents         bigint NOT NULL DEFAULT 0 CHECK (credit_cents >= 0),   -- carried to the next invoice
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CHECK ((scheduled_plan_id IS NULL) = (scheduled_cycle IS NULL))
);
CREATE INDEX subscriptions_due ON subscriptions (current_period_end) WHERE status = 'active';

CREATE TABLE invoices (
    id           uuid PRIMARY KEY,
    client_id    uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    number       bigint NOT NULL,                     -- 1, 2, ... per workspace
    provider     text NOT NULL,
    reason       text NOT NULL CHECK (reason IN ('checkout', 'change', 'renewal')),
    plan_id      text NOT NULL,
    cycle        text NOT NULL,
    period_start timestamptz NOT NULL,
    period_end   timestamptz NOT NULL,
    lines        jsonb NOT NULL,                      -- [{description, amountCents}]
    total_cents  bigint NOT NULL CHECK (total_cents >= 0),
    status       text NOT NULL CHECK (status IN ('open', 'paid', 'void')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (client_id, number)
);
-- A renewal is invoiced once per period, however often the rollover runs.
CREATE UNIQUE INDEX invoices_one_renewal ON invoices (client_id, period_start) WHERE reason = 'renewal';
CREATE INDEX invoices_by_client ON invoices (client_id, number DESC);
