-- name: analytics_series
-- Rollup rows of a tenant summed per bucket ($6 = 'hour' or 'day', UTC), with the latency histograms
-- summed elementwise. Filters: $2 project, $3 endpoint (NULL = all); minutes in [$4, $5).
WITH r AS (
    SELECT date_trunc($6, minute, 'UTC') AS bucket, *
    FROM delivery_rollups
    WHERE client_id = $1 AND ($2::uuid IS NULL OR project_id = $2) AND ($3::uuid IS NULL OR endpoint_id = $3)
      AND minute >= $4 AND minute < $5
), totals AS (
    SELECT bucket, sum(attempts)::bigint AS attempts, sum(successes)::bigint AS successes,
           sum(failures)::bigint AS failures, sum(timeouts)::bigint AS timeouts,
           sum(delivered)::bigint AS delivered, sum(dead)::bigint AS dead,
           sum(err_timeout)::bigint AS err_timeout, sum(err_4xx)::bigint AS err_4xx,
           sum(err_5xx)::bigint AS err_5xx, sum(err_dns)::bigint AS err_dns, sum(err_tls)::bigint AS err_tls,
           sum(err_refused)::bigint AS err_refused, sum(err_other)::bigint AS err_other,
           sum(duration_sum_ms)::bigint AS duration_sum_ms, max(duration_max_ms) AS duration_max_ms
    FROM r GROUP BY bucket
), hist AS (
    SELECT bucket, array_agg(n ORDER BY i) AS latency_hist
    FROM (SELECT r.bucket, h.i, sum(h.n)::bigint AS n
          FROM r, unnest(r.latency_hist) WITH ORDINALITY AS h(n, i)
          GROUP BY r.bucket, h.i) per_bucket
    GROUP BY bucket
)
SELECT totals.*, hist.latency_hist
FROM totals JOIN hist USING (bucket)
ORDER BY bucket;

-- name: analytics_endpoint_health
-- Per endpoint of the tenant over [$4, $5): counts, latency histogram, and the breaker state.
WITH r AS (
    SELECT * FROM delivery_rollups
    WHERE client_id = $1 AND ($2::uuid IS NULL OR project_id = $2) AND ($3::uuid IS NULL OR endpoint_id = $3)
      AND minute >= $4 AND minute < $5
), totals AS (
    SELECT endpoint_id, sum(attempts)::bigint AS attempts, sum(successes)::bigint AS successes,
           sum(failures + timeouts)::bigint AS failed, sum(delivered)::bigint AS delivered,
           sum(dead)::bigint AS dead, max(duration_max_ms) AS duration_max_ms
    FROM r GROUP BY endpoint_id
), hist AS (
    SELECT endpoint_id, array_agg(n ORDER BY i) AS latency_hist
    FROM (SELECT r.endpoint_id, h.i, sum(h.n)::bigint AS n
          FROM r, unnest(r.latency_hist) WITH ORDINALITY AS h(n, i)
          GROUP BY r.endpoint_id, h.i) per_endpoint
    GROUP BY endpoint_id
)
SELECT e.id, e.url, e.status, e.circuit_state,
       coalesce(t.attempts, 0) AS attempts, coalesce(t.successes, 0) AS successes,
       coalesce(t.failed, 0) AS failed, coalesce(t.delivered, 0) AS delivered, coalesce(t.dead, 0) AS dead,
       coalesce(t.duration_max_ms, 0) AS duration_max_ms, hist.latency_hist
FROM endpoints e
LEFT JOIN totals t ON t.endpoint_id = e.id
LEFT JOIN hist ON hist.endpoint_id = e.id
WHERE e.client_id = $1 AND e.deleted_at IS NULL
  AND ($2::uuid IS NULL OR e.project_id = $2) AND ($3::uuid IS NULL OR e.id = $3)
ORDER BY e.created_at, e.id
LIMIT $6;
