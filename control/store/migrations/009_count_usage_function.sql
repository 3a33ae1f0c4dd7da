-- 009: counting accepted events against the monthly quota is a function, so that one statement
-- can store an event, its deliveries and its count (a single create is then one round trip), and
-- the batch insert counts the same way.

-- Adds `n` accepted events to the client's current month (UTC) and returns the slot's new count.
-- Unlimited clients spread their count over 32 slot rows by backend pid (no hot row); a client
-- with a quota writes slot 0 under its row lock, so that the check is exact under concurrency (the
-- lock is held until the caller's transaction commits, so call it last). When the month's total
-- would pass the quota it raises SQLSTATE MT402 and the caller's statement (and transaction) stores
-- nothing.
CREATE FUNCTION mittr_count_usage(client uuid, n bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    counted bigint;
BEGIN
    WITH c AS (
        SELECT monthly_quota AS quota, date_trunc('month', now() AT TIME ZONE 'UTC')::date AS month
        FROM clients WHERE id = client
    )
    INSERT INTO client_usage AS u (client_id, month, slot, events)
    SELECT client, c.month, CASE WHEN c.quota IS NULL THEN pg_backend_pid() % 32 ELSE 0 END, n
    FROM c
    WHERE c.quota IS NULL
       OR n + (SELECT coalesce(sum(o.events), 0) FROM client_usage o
               WHERE o.client_id = client AND o.month = c.month) <= c.quota
    ON CONFLICT (client_id, month, slot) DO UPDATE
        SET events = u.events + EXCLUDED.events, updated_at = now()
        WHERE (SELECT quota FROM c) IS NULL
           OR u.events + EXCLUDED.events
              + (SELECT coalesce(sum(o.events), 0) FROM client_usage o
                 WHERE o.client_id = client AND o.month = u.month AND o.slot <> 0) <= (SELECT quota FROM c)
    RETURNING u.events INTO counted;
    IF counted IS NULL THEN
        RAISE EXCEPTION 'monthly message quota exceeded' USING ERRCODE = 'MT402';
    END IF;
    RETURN counted;
END;
$$;
