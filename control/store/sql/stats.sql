-- name: upsert_shard_stats
INSERT INTO shard_stats (slot, shard_index, lo, hi, owner, epoch, buffered, in_flight, delivered_total, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now())
ON CONFLICT (slot) DO UPDATE SET
    shard_index = EXCLUDED.shard_index, lo = EXCLUDED.lo, hi = EXCLUDED.hi, owner = EXCLUDED.owner,
    epoch = EXCLUDED.epoch, buffered = EXCLUDED.buffered, in_flight = EXCLUDED.in_flight,
    delivered_total = EXCLUDED.delivered_total, updated_at = now();

-- name: upsert_endpoint_limiter_stats
INSERT INTO endpoint_limiter_stats (endpoint_id, limit_per_sec, tokens, throttled_total, breaker_state, updated_at)
SELECT u.endpoint_id, u.limit_per_sec, u.tokens, u.throttled_total, u.breaker_state, now()
FROM unnest($1::uuid[], $2::int[], $3::float8[], $4::bigint[], $5::text[])
     AS u(endpoint_id, limit_per_sec, tokens, throttled_total, breaker_state)
ORDER BY u.endpoint_id
ON CONFLICT (endpoint_id) DO UPDATE SET
    limit_per_sec = EXCLUDED.limit_per_sec, tokens = EXCLUDED.tokens,
    throttled_total = EXCLUDED.throttled_total, breaker_state = EXCLUDED.breaker_state, updated_at = now();

-- name: stats_queue_depth
-- Open deliveries of a tenant by state (index-only on tasks_client_open without a project).
SELECT t.status, count(*) AS n
FROM tasks t
WHERE t.client_id = $1 AND t.status IN ('queued', 'delivering', 'failed')
  AND ($2::uuid IS NULL OR EXISTS (SELECT 1 FROM events e WHERE e.id = t.event_id AND e.project_id = $2))
GROUP BY t.status;

-- name: stats_recent_rollups
-- The current minute and the whole minute before it: rates are these counts over the seconds covered.
SELECT coalesce(sum(attempts), 0)::bigint AS attempts,
       coalesce(sum(successes), 0)::bigint AS successes,
       coalesce(sum(failures + timeouts), 0)::bigint AS failed,
       coalesce(sum(delivered), 0)::bigint AS delivered,
       coalesce(sum(dead), 0)::bigint AS dead,
       date_trunc('minute', now() - interval '1 minute') AS since,
       now() AS until
FROM delivery_rollups
WHERE client_id = $1 AND ($2::uuid IS NULL OR project_id = $2)
  AND minute >= date_trunc('minute', now() - interval '1 minute');

-- name: stats_shards
SELECT shard_index, slot, lo, hi, owner, epoch, buffered, in_flight, delivered_total, updated_at
FROM shard_stats
WHERE updated_at > now() - make_interval(secs => $1)
ORDER BY lo;

-- name: rate_limit_keys
-- A tenant's active API keys with their limit (the key's own, else $3 = api.default_rate_limit) and
-- their shared bucket (api_rate_buckets; no row while the key was never used): the tokens in it now,
-- refilled read-only by the database clock exactly as rate_bucket_take would, and the requests every
-- worker refused and reported.
SELECT k.id, k.name, k.key_prefix, k.project_id, l.per_sec AS limit_per_sec,
       least(l.per_sec, b.tokens + l.per_sec * greatest(0.0, extract(epoch FROM clock_timestamp() - b.refilled_at)::float8))
           AS tokens,
       b.refused
FROM api_keys k
CROSS JOIN LATERAL (SELECT coalesce(k.rate_limit, $3::integer) AS per_sec) l
LEFT JOIN api_rate_buckets b ON b.bucket_key = k.id
WHERE k.client_id = $1 AND k.is_active AND ($2::uuid IS NULL OR k.project_id = $2)
  AND (k.expires_at IS NULL OR k.expires_at > now())
ORDER BY k.created_at, k.id;

-- name: rate_limit_endpoints
-- A tenant's endpoints with the live figures of the shard holding them, when fresh.
SELECT e.id, e.url, e.rate_limit_per_sec, e.circuit_state, e.status,
       s.tokens, s.throttled_total, s.breaker_state, s.updated_at AS reported_at
FROM endpoints e
LEFT JOIN endpoint_limiter_stats s
       ON s.endpoint_id = e.id AND s.updated_at > now() - make_interval(secs => $4)
WHERE e.client_id = $1 AND e.deleted_at IS NULL
  AND ($2::uuid IS NULL OR e.project_id = $2)
  AND ($3::uuid IS NULL OR e.id = $3)
ORDER BY e.created_at, e.id
LIMIT $5;

-- name: metrics_queue_depth
SELECT status, count(*) AS n FROM tasks WHERE status IN ('queued', 'delivering', 'failed') GROUP BY status;

-- name: metrics_breakers
SELECT circuit_state, count(*) AS n FROM endpoints WHERE deleted_at IS NULL GROUP BY circuit_state;

-- name: metrics_leases
SELECT slot, owner, expires_at > now() AS live FROM shard_leases ORDER BY lo;

-- name: metrics_shards
SELECT slot, buffered, in_flight FROM shard_stats
WHERE updated_at > now() - make_interval(secs => $1)
ORDER BY lo;
