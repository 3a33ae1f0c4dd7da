-- name: count_usage
-- Adds $2 accepted events to the client's current month (UTC). No row back: the client's monthly
-- quota would be exceeded, and the caller rolls back. Unlimited clients spread their count over
-- 32 slot rows by backend pid (no hot row); a client with a quota writes slot 0 under its row lock,
-- so that the check is exact under concurrency. Run it last in the transaction: the lock is held
-- until commit.
WITH c AS (
    SELECT monthly_quota AS quota, date_trunc('month', now() AT TIME ZONE 'UTC')::date AS month
    FROM clients WHERE id = $1
)
INSERT INTO client_usage AS u (client_id, month, slot, events)
SELECT $1, c.month, CASE WHEN c.quota IS NULL THEN pg_backend_pid() % 32 ELSE 0 END, $2::bigint
FROM c
WHERE c.quota IS NULL
   OR $2 + (SELECT coalesce(sum(o.events), 0) FROM client_usage o
            WHERE o.client_id = $1 AND o.month = c.month) <= c.quota
ON CONFLICT (client_id, month, slot) DO UPDATE
    SET events = u.events + EXCLUDED.events, updated_at = now()
    WHERE (SELECT quota FROM c) IS NULL
       OR u.events + EXCLUDED.events
          + (SELECT coalesce(sum(o.events), 0) FROM client_usage o
             WHERE o.client_id = $1 AND o.month = u.month AND o.slot <> 0) <= (SELECT quota FROM c)
RETURNING u.events;

-- name: usage_this_month
SELECT coalesce(sum(events), 0)::bigint AS events
FROM client_usage
WHERE client_id = $1 AND month = date_trunc('month', now() AT TIME ZONE 'UTC')::date;
