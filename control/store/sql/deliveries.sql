-- name: list_deliveries
-- Always bounded by attempted_at ($3, $4) so that only the day partitions in range are read.
SELECT id, event_id, endpoint_id, attempt_number, status_code, response_body, error, error_category,
       outcome, duration_ms, processing_overhead_us, attempted_at
FROM delivery_attempts
WHERE client_id = $1 AND ($2::uuid IS NULL OR project_id = $2)
  AND attempted_at >= $3 AND attempted_at <= $4
  AND ($5::text IS NULL OR outcome = $5)
  AND ($6::uuid IS NULL OR endpoint_id = $6)
  AND ($7::text IS NULL OR event_type = $7)
  AND ($8::timestamptz IS NULL OR (attempted_at, id) < ($8, $9::uuid))
ORDER BY attempted_at DESC, id DESC
LIMIT $10 OFFSET $11;

-- name: get_delivery
SELECT id, event_id, endpoint_id, attempt_number, status_code, response_body, error, error_category,
       outcome, duration_ms, processing_overhead_us, attempted_at
FROM delivery_attempts
WHERE id = $1 AND client_id = $2 AND ($3::uuid IS NULL OR project_id = $3)
LIMIT 1;
