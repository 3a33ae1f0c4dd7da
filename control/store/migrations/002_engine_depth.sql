-- 002: engine depth — Standard Webhooks signing, FIFO claims, breaker persistence.

ALTER TABLE endpoints
    ADD COLUMN standard_webhooks boolean NOT NULL DEFAULT false,
    ADD COLUMN sw_ed25519_private text,      -- sealed (control/crypto.py), like signing_secret and mtls_key
    ADD COLUMN sw_ed25519_public text;

-- FIFO endpoints' work is claimed in creation order by its own statement.
CREATE INDEX endpoints_fifo ON endpoints (id) WHERE fifo AND deleted_at IS NULL;
