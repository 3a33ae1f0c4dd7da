-- Shared per-API-key token buckets (api_rate_buckets, migrations 007 and 010). The engine uses the
-- same buckets, keyed by the endpoint's id, for the rate limit of a hot endpoint spread over several
-- shards (engine/policy/spread.py).

-- name: rate_bucket_take
-- Take up to $3 tokens from key $1's bucket, which refills at $2 tokens a second up to $2 (one
-- second's burst), created full on first use. Grants min($3, whole tokens available); returns the
-- grant and the tokens left. One statement, so concurrent takes from any host serialise on the
-- row. Only the database clock counts, read once; refilled_at never moves back, so no interval is
-- credited twice. A lowered limit caps the tokens at the new burst. $4: requests the calling worker
-- refused for the key since it last reported, added to the key's count on the way.
INSERT INTO api_rate_buckets AS b (bucket_key, tokens, granted, refilled_at, refused)
VALUES ($1, $2::float8 - least($3::integer, $2), least($3, $2)::integer, clock_timestamp(), $4::bigint)
ON CONFLICT (bucket_key) DO UPDATE SET (tokens, granted, refilled_at, refused) = (
    SELECT r.tokens - g.n, g.n, r.at, b.refused + $4::bigint
    FROM (SELECT least($2, b.tokens + $2 * greatest(0.0, extract(epoch FROM c.t - b.refilled_at)::float8)) AS tokens,
                 greatest(b.refilled_at, c.t) AS at
          FROM (SELECT clock_timestamp() AS t) c) r,
         LATERAL (SELECT least($3, floor(r.tokens))::integer AS n) g)
RETURNING granted, tokens

-- name: rate_bucket_add_refusals
-- Add refusals to several keys' counts: key $1[i], $3[i] requests refused, $2[i] its limit (a bucket
-- missing since a crash is created full, as on first use). Rows are locked in key order, so two
-- workers reporting at once cannot deadlock; the bucket itself is left as it is.
INSERT INTO api_rate_buckets AS b (bucket_key, tokens, granted, refilled_at, refused)
SELECT u.bucket_key, u.rate, 0, clock_timestamp(), u.n
FROM unnest($1::uuid[], $2::float8[], $3::bigint[]) AS u(bucket_key, rate, n)
ORDER BY u.bucket_key
ON CONFLICT (bucket_key) DO UPDATE SET refused = b.refused + EXCLUDED.refused
