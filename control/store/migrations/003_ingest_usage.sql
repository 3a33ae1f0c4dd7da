-- 003: monthly usage counters (message quota), and the index batch retry by endpoint reads.

-- Accepted events per client per calendar month (UTC), counted in the same transaction as the
-- insert. A client's count is spread over `slot` rows so that concurrent inserts of an unlimited
-- client do not queue on one hot row; a client with a quota writes slot 0 only, so that its check
-- is exact. The month's total is sum(events) over the slots.
CREATE TABLE client_usage (
    client_id  uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    month      date NOT NULL,                   -- first day of the month
    slot       smallint NOT NULL,
    events     bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, month, slot)
);

-- Batch retry by endpoint: that endpoint's ended deliveries (failed ones are in tasks_endpoint_open).
CREATE INDEX tasks_endpoint_dead ON tasks (endpoint_id) WHERE endpoint_id IS NOT NULL AND status = 'dead';
