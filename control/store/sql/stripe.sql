-- The Stripe billing provider: a workspace's Stripe ids, handled webhook events, provider invoices.

-- name: stripe_customer_get
SELECT * FROM stripe_customers WHERE client_id = $1;

-- name: stripe_customer_by_id
SELECT * FROM stripe_customers WHERE customer_id = $1;

-- name: stripe_customer_insert
-- The first customer made for a workspace wins (two checkouts at once share one Idempotency-Key).
INSERT INTO stripe_customers (client_id, customer_id) VALUES ($1, $2)
ON CONFLICT (client_id) DO NOTHING;

-- name: stripe_customer_set_subscription
-- $2 subscription, $3 its item, $4 its price, $5 the schedule attached to it (NULL: none).
UPDATE stripe_customers SET subscription_id = $2, subscription_item_id = $3, price_id = $4, schedule_id = $5,
       updated_at = now()
WHERE client_id = $1;

-- name: stripe_customer_set_schedule
UPDATE stripe_customers SET schedule_id = $2, updated_at = now() WHERE client_id = $1;

-- name: stripe_event_insert
-- NULL when the event was handled already (or is being handled: the caller waits for that
-- transaction, then sees the row).
INSERT INTO stripe_events (id, type, client_id) VALUES ($1, $2, $3)
ON CONFLICT (id) DO NOTHING
RETURNING id;

-- name: stripe_event_set_client
UPDATE stripe_events SET client_id = $2 WHERE id = $1;

-- name: stripe_events_prune
-- Stripe stops retrying an event after three days; ids older than $1 can go, a few at a time.
DELETE FROM stripe_events WHERE id IN (
    SELECT id FROM stripe_events WHERE received_at < $1 ORDER BY received_at LIMIT $2);

-- name: billing_client_xact_lock
-- Serialises one workspace's webhook handling (invoice numbers, the subscription's state).
SELECT pg_advisory_xact_lock(hashtext('mittr_billing_webhook'), hashtext($1::uuid::text));

-- name: invoice_upsert_external
-- A provider's invoice ($13 its id): numbered like the others on first sight; later reports
-- update it, but a paid or void invoice never goes back to open (events arrive in any order).
INSERT INTO invoices (id, client_id, number, provider, reason, plan_id, cycle, period_start, period_end,
                      lines, total_cents, status, external_id)
SELECT $1, $2, coalesce((SELECT max(number) FROM invoices WHERE client_id = $2), 0) + 1,
       $3, $4, $5, $6, $7, $8, $9, $10, $11, $12
ON CONFLICT (provider, external_id) WHERE external_id IS NOT NULL DO UPDATE
    SET status = CASE WHEN invoices.status IN ('paid', 'void') THEN invoices.status ELSE EXCLUDED.status END,
        lines = EXCLUDED.lines, total_cents = EXCLUDED.total_cents
RETURNING *;
