-- name: upsert_delivery_rollups
-- One row per key (sorted by the caller); $20 is every row's latency histogram, concatenated,
-- $21 values each. A row that exists gets the counts added and the histograms added elementwise.
INSERT INTO delivery_rollups AS r (
    client_id, minute, endpoint_id, project_id, attempts, successes, failures, timeouts, delivered, dead,
    err_timeout, err_4xx, err_5xx, err_dns, err_tls, err_refused, err_other, duration_sum_ms,
    duration_max_ms, latency_hist)
SELECT u.client_id, u.minute, u.endpoint_id, u.project_id, u.attempts, u.successes, u.failures, u.timeouts,
       u.delivered, u.dead, u.err_timeout, u.err_4xx, u.err_5xx, u.err_dns, u.err_tls, u.err_refused,
       u.err_other, u.duration_sum_ms, u.duration_max_ms,
       ($20::bigint[])[(u.ord - 1) * $21 + 1 : u.ord * $21]
FROM unnest($1::uuid[], $2::timestamptz[], $3::uuid[], $4::uuid[], $5::bigint[], $6::bigint[], $7::bigint[],
            $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[],
            $14::bigint[], $15::bigint[], $16::bigint[], $17::bigint[], $18::bigint[], $19::int[])
     WITH ORDINALITY AS u(client_id, minute, endpoint_id, project_id, attempts, successes, failures, timeouts,
                          delivered, dead, err_timeout, err_4xx, err_5xx, err_dns, err_tls, err_refused,
                          err_other, duration_sum_ms, duration_max_ms, ord)
ORDER BY u.ord
ON CONFLICT (client_id, minute, endpoint_id, project_id) DO UPDATE SET
    attempts = r.attempts + EXCLUDED.attempts,
    successes = r.successes + EXCLUDED.successes,
    failures = r.failures + EXCLUDED.failures,
    timeouts = r.timeouts + EXCLUDED.timeouts,
    delivered = r.delivered + EXCLUDED.delivered,
    dead = r.dead + EXCLUDED.dead,
    err_timeout = r.err_timeout + EXCLUDED.err_timeout,
    err_4xx = r.err_4xx + EXCLUDED.err_4xx,
    err_5xx = r.err_5xx + EXCLUDED.err_5xx,
    err_dns = r.err_dns + EXCLUDED.err_dns,
    err_tls = r.err_tls + EXCLUDED.err_tls,
    err_refused = r.err_refused + EXCLUDED.err_refused,
    err_other = r.err_other + EXCLUDED.err_other,
    duration_sum_ms = r.duration_sum_ms + EXCLUDED.duration_sum_ms,
    duration_max_ms = GREATEST(r.duration_max_ms, EXCLUDED.duration_max_ms),
    latency_hist = (SELECT array_agg(coalesce(h.a, 0) + coalesce(h.b, 0) ORDER BY h.i)
                    FROM unnest(r.latency_hist, EXCLUDED.latency_hist) WITH ORDINALITY AS h(a, b, i));
