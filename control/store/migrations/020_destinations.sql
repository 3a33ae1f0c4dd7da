-- Broker destinations (issue 16): an endpoint with deliveryMode 'broker' publishes to the broker
-- its brokerConfig names (credentials sealed inside, see control/policy/destinations.py). Storage
-- endpoints keep using storage_config.
ALTER TABLE endpoints ADD COLUMN IF NOT EXISTS broker_config jsonb;
