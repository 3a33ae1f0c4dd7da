-- 007: the per-API-key request rate limit is one token bucket per key, shared by every API worker
-- on every host (control/services/ratelimit.py leases tokens from it in chunks; the refill is
-- computed by the `rate_bucket_take` query with the database clock).
-- UNLOGGED: no WAL for a row updated ~10 times a second per busy key. After a crash (or on a
-- promoted standby) the table is empty and every bucket starts full again: at most one extra
-- second's burst per key. One row per key ever used (~60 bytes); fillfactor leaves room for HOT
-- updates, since no indexed column changes.
CREATE UNLOGGED TABLE api_rate_buckets (
    bucket_key  uuid PRIMARY KEY,              -- the API key's id (the client's id for a keyless principal)
    tokens      double precision NOT NULL,     -- left after the last take, as of refilled_at
    granted     integer NOT NULL,              -- what the last take handed out (read back by RETURNING)
    refilled_at timestamptz NOT NULL           -- database clock of the last take; never goes backwards
) WITH (fillfactor = 50);
