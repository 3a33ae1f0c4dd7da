-- name: count_usage
-- Adds $2 accepted events to client $1's current month; raises SQLSTATE MT402 when that would pass
-- its monthly quota (migration 009). Run it last in the transaction: a quota'd client's row stays
-- locked until commit.
SELECT mittr_count_usage($1, $2);

-- name: usage_this_month
SELECT coalesce(sum(events), 0)::bigint AS events
FROM client_usage
WHERE client_id = $1 AND month = date_trunc('month', now() AT TIME ZONE 'UTC')::date;
