-- name: plan_quotas_clear
DELETE FROM plan_quotas;

-- name: plan_quotas_insert
-- $1 plan ids, $2 their quotas (NULL = unlimited), $3 the default plan's id.
INSERT INTO plan_quotas (plan_id, monthly_event_quota, is_default)
SELECT id, quota, id = $3 FROM unnest($1::text[], $2::bigint[]) AS p(id, quota);

-- name: client_plan
SELECT plan_id, monthly_quota FROM clients WHERE id = $1 AND deleted_at IS NULL;

-- name: lock_client_plan
-- Serialises a workspace's plan-limited creations (endpoint count) and its plan changes.
SELECT plan_id FROM clients WHERE id = $1 AND deleted_at IS NULL FOR NO KEY UPDATE;

-- name: set_client_plan
UPDATE clients SET plan_id = $2 WHERE id = $1;

-- name: usage_events_by_month
-- Accepted events per calendar month (UTC) in [$2, $3) (first days of months), from the ingest counters.
SELECT month, sum(events)::bigint AS events
FROM client_usage WHERE client_id = $1 AND month >= $2 AND month < $3
GROUP BY month;

-- name: usage_deliveries_by_month
-- Delivery telemetry per calendar month (UTC) of the rollup minutes in [$2, $3): the same rows and
-- sums as analytics_series, so the two agree over the same range.
SELECT date_trunc('month', minute, 'UTC') AS month, sum(attempts)::bigint AS attempts,
       sum(successes)::bigint AS successes, sum(failures + timeouts)::bigint AS failed,
       sum(delivered)::bigint AS delivered, sum(dead)::bigint AS dead
FROM delivery_rollups WHERE client_id = $1 AND minute >= $2 AND minute < $3
GROUP BY 1;

-- name: subscription_lock
SELECT * FROM subscriptions WHERE client_id = $1 FOR UPDATE;

-- name: subscription_get
SELECT * FROM subscriptions WHERE client_id = $1;

-- name: subscription_upsert
-- A new subscription, or a canceled one started again ($1 client ... $6 period end).
INSERT INTO subscriptions AS s (client_id, provider, plan_id, cycle, status, current_period_start,
                                current_period_end, credit_cents)
VALUES ($1, $2, $3, $4, 'active', $5, $6, $7)
ON CONFLICT (client_id) DO UPDATE
    SET provider = EXCLUDED.provider, plan_id = EXCLUDED.plan_id, cycle = EXCLUDED.cycle, status = 'active',
        current_period_start = EXCLUDED.current_period_start, current_period_end = EXCLUDED.current_period_end,
        cancel_at_period_end = false, scheduled_plan_id = NULL, scheduled_cycle = NULL,
        credit_cents = EXCLUDED.credit_cents, updated_at = now()
RETURNING *;

-- name: subscription_update
-- Every mutable column at once ($2 plan ... $10 credit): the service computed the new state.
UPDATE subscriptions SET plan_id = $2, cycle = $3, status = $4, current_period_start = $5,
       current_period_end = $6, cancel_at_period_end = $7, scheduled_plan_id = $8, scheduled_cycle = $9,
       credit_cents = $10, updated_at = now()
WHERE client_id = $1
RETURNING *;

-- name: invoice_insert
-- Numbered 1, 2, ... per workspace (the caller holds the subscription's row lock); a renewal
-- already invoiced for that period inserts nothing (the rollover may run twice).
INSERT INTO invoices (id, client_id, number, provider, reason, plan_id, cycle, period_start, period_end,
                      lines, total_cents, status)
SELECT $1, $2, coalesce((SELECT max(number) FROM invoices WHERE client_id = $2), 0) + 1,
       $3, $4, $5, $6, $7, $8, $9, $10, $11
ON CONFLICT DO NOTHING
RETURNING *;

-- name: invoice_list
SELECT * FROM invoices WHERE client_id = $1 AND ($2::bigint IS NULL OR number < $2)
ORDER BY number DESC LIMIT $3;

-- name: subscriptions_due
-- Active subscriptions whose period has ended (the rollover's work), oldest first; not those of
-- the providers $3, which renew them themselves.
SELECT client_id FROM subscriptions WHERE status = 'active' AND current_period_end <= $1
  AND provider <> ALL($3::text[])
ORDER BY current_period_end LIMIT $2;

-- name: billing_rollover_try_lock
-- One rollover runner at a time across every process and host (session lock: gone with the
-- connection). The row locks make two runners safe anyway; the lock saves the duplicate work.
SELECT pg_try_advisory_lock(hashtext('mittr_billing_rollover'));

-- name: billing_rollover_unlock
SELECT pg_advisory_unlock(hashtext('mittr_billing_rollover'));
