-- 027: the Stripe billing provider (control/services/billing_stripe.py).

-- A workspace's Stripe objects. The customer is made before the first Checkout Session, so a
-- webhook always finds its workspace by customer id; the subscription, its item and price, and a
-- subscription schedule (a plan change waiting for the renewal) are filled in as Stripe reports them.
CREATE TABLE stripe_customers (
    client_id            uuid PRIMARY KEY REFERENCES clients (id) ON DELETE CASCADE,
    customer_id          text NOT NULL UNIQUE,
    subscription_id      text UNIQUE,
    subscription_item_id text,
    price_id             text,
    schedule_id          text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- Webhook events handled, by Stripe's event id: a redelivery (Stripe retries for days, and may
-- send an event twice) is answered without being handled again. Pruned after 30 days.
CREATE TABLE stripe_events (
    id          text PRIMARY KEY,
    type        text NOT NULL,
    client_id   uuid REFERENCES clients (id) ON DELETE CASCADE,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stripe_events_received ON stripe_events (received_at);

-- Invoices issued by a provider carry the provider's id, once per invoice however often it is reported.
ALTER TABLE invoices ADD COLUMN external_id text;
CREATE UNIQUE INDEX invoices_external ON invoices (provider, external_id) WHERE external_id IS NOT NULL;
