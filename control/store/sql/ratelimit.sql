-- Shared per-API-key token buckets (api_rate_buckets, migration 007).

-- name: rate_bucket_take
-- Take up to $3 tokens from key $1's bucket, which refills at $2 tokens a second up to $2 (one
-- second's burst), created full on first use. Grants min($3, whole tokens available); returns the
-- grant and the tokens left. One statement, so concurrent takes from any host serialise on the
-- row. Only the database clock counts, read once; refilled_at never moves back, so no interval is
-- credited twice. A lowered limit caps the tokens at the new burst.
INSERT INTO api_rate_buckets AS b (bucket_key, tokens, granted, refilled_at)
VALUES ($1, $2::float8 - least($3::integer, $2), least($3, $2)::integer, clock_timestamp())
ON CONFLICT (bucket_key) DO UPDATE SET (tokens, granted, refilled_at) = (
    SELECT r.tokens - g.n, g.n, r.at
    FROM (SELECT least($2, b.tokens + $2 * greatest(0.0, extract(epoch FROM c.t - b.refilled_at)::float8)) AS tokens,
                 greatest(b.refilled_at, c.t) AS at
          FROM (SELECT clock_timestamp() AS t) c) r,
         LATERAL (SELECT least($3, floor(r.tokens))::integer AS n) g)
RETURNING granted, tokens
