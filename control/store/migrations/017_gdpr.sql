-- 017: GDPR erasure. A workspace's erasure is recorded here (and only here: its audit log goes with
-- everything else), so that an erasure a crash interrupted is finished at the next start, and so
-- that the operator can show when a workspace was erased and by whom (ids and counts only: no
-- names, addresses or content).

CREATE TABLE gdpr_erasures (
    client_id    uuid PRIMARY KEY,                 -- the clients row stays (deleted_at set, name blanked)
    requested_at timestamptz NOT NULL DEFAULT now(),
    actor_type   text NOT NULL,
    actor_id     uuid,
    finished_at  timestamptz,                      -- every row of the workspace removed
    swept_at     timestamptz,                      -- the late sweep (deliveries that were on the wire) done
    counts       jsonb NOT NULL DEFAULT '{}'       -- rows removed, per table
);
CREATE INDEX gdpr_erasures_open ON gdpr_erasures (requested_at) WHERE swept_at IS NULL;

-- One bounded batch of a workspace's rows in any table with a client_id column: the rows are found
-- through that column (its index, where the table has one) and removed by their physical address,
-- so each call is one short statement whatever the table. Returns how many rows went.
CREATE FUNCTION mittr_erase_client_rows(tbl regclass, client uuid, n integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    gone integer;
BEGIN
    EXECUTE format('DELETE FROM %s WHERE ctid = ANY(ARRAY(SELECT ctid FROM %s WHERE client_id = $1 LIMIT $2))',
                   tbl, tbl)
        USING client, n;
    GET DIAGNOSTICS gone = ROW_COUNT;
    RETURN gone;
END;
$$;
