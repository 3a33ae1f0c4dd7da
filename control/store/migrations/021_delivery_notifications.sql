-- 021: delivery notifications for connectors (README "Alerts"). The alert evaluator's round scans
-- what changed since a watermark per workspace and kind (`notification_marks`, keyset (at, id)):
-- breaker transitions (recorded here by a trigger on endpoints.circuit_state, which the shards
-- write only when a breaker opens or closes) and tasks that ended dead (a partial index).

CREATE TABLE notification_marks (
    client_id  uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    kind       text NOT NULL,                                  -- endpoint.breaker_opened | ...
    mark_at    timestamptz NOT NULL,
    mark_id    uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, kind)
);

CREATE TABLE breaker_transitions (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    client_id   uuid NOT NULL,
    endpoint_id uuid NOT NULL,
    state       text NOT NULL,                                 -- the new state: open | closed
    previous    text NOT NULL,
    opened_at   timestamptz,
    at          timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX breaker_transitions_scan ON breaker_transitions (client_id, state, at, id);
CREATE INDEX breaker_transitions_age ON breaker_transitions (at);

CREATE FUNCTION mittr_breaker_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO breaker_transitions (client_id, endpoint_id, state, previous, opened_at)
    VALUES (NEW.client_id, NEW.id, NEW.circuit_state, OLD.circuit_state, NEW.circuit_opened_at);
    RETURN NULL;
END
$$;

CREATE TRIGGER endpoints_breaker_transition AFTER UPDATE OF circuit_state ON endpoints
    FOR EACH ROW WHEN (OLD.circuit_state IS DISTINCT FROM NEW.circuit_state)
    EXECUTE FUNCTION mittr_breaker_transition();

-- Deliveries that ended dead, in the order they did (few rows: only dead tasks are in it).
CREATE INDEX tasks_dead_changed ON tasks (client_id, updated_at, id) WHERE status = 'dead';
