-- 019: alerting. Rules watch the delivery rollups; connectors are named channels (Slack, Discord,
-- Teams, e-mail, webhooks, PagerDuty); the history keeps every firing and resolution with what
-- happened to its notification. Secret settings are sealed by the application (SecretBox) into
-- `secrets` / `action_secrets`; the jsonb columns hold only what reads may show.

CREATE TABLE connectors (
    id          uuid PRIMARY KEY,
    client_id   uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    project_id  uuid REFERENCES projects (id) ON DELETE CASCADE,
    name        text NOT NULL,
    type        text NOT NULL,
    config      jsonb NOT NULL DEFAULT '{}',
    secrets     text,
    template    jsonb NOT NULL DEFAULT '{}',
    notify      text[] NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (client_id, name)
);

CREATE TABLE alert_rules (
    id                uuid PRIMARY KEY,
    client_id         uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    project_id        uuid REFERENCES projects (id) ON DELETE CASCADE,
    endpoint_id       uuid,
    name              text NOT NULL,
    description       text NOT NULL DEFAULT '',
    enabled           boolean NOT NULL DEFAULT true,
    metric            text NOT NULL,
    operator          text NOT NULL,
    threshold         double precision NOT NULL,
    time_window       text NOT NULL,
    window_s          integer NOT NULL,
    action            jsonb NOT NULL,
    action_secrets    text,
    cooldown          text NOT NULL,
    cooldown_s        integer NOT NULL,
    state             text NOT NULL DEFAULT 'ok',      -- ok | firing
    last_value        double precision,
    last_evaluated_at timestamptz,
    last_fired_at     timestamptz,
    last_resolved_at  timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_rules_client ON alert_rules (client_id, created_at DESC, id DESC);
CREATE INDEX alert_rules_enabled ON alert_rules (client_id) WHERE enabled;

CREATE TABLE alert_history (
    id          uuid PRIMARY KEY,
    client_id   uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    project_id  uuid,
    rule_id     uuid REFERENCES alert_rules (id) ON DELETE SET NULL,
    rule_name   text NOT NULL,
    status      text NOT NULL,                     -- firing | resolved
    metric      text NOT NULL,
    operator    text NOT NULL,
    value       double precision,
    threshold   double precision NOT NULL,
    time_window text NOT NULL,
    channel     text NOT NULL,                     -- the action's type
    connector   text,                              -- the connector's name, when the action names one
    event_id    uuid,                              -- the internal event carrying the notification
    error       text,                              -- why it could not be sent
    sent_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_history_client ON alert_history (client_id, created_at DESC, id DESC);
