-- 010: requests refused by the per-API-key rate limit, counted per key across every API worker and
-- host, for GET /api/v1/metrics/rate-limits (`throttled`). Workers count refusals in memory and add
-- them to the row with their next take of tokens (`rate_bucket_take`, no extra round trip) or, when
-- none comes, within a second in one statement for all their keys (`rate_bucket_add_refusals`).
-- The table is UNLOGGED: after a crash (or on a promoted standby) its rows are gone and the counts
-- start again from 0, like the buckets themselves. A constant default: no table rewrite.
ALTER TABLE api_rate_buckets ADD COLUMN refused bigint NOT NULL DEFAULT 0;
