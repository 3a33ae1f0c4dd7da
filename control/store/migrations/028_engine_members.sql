-- 028: engine membership (issue 17). Every engine process (`mittr engine`, the engine side of
-- `mittr serve`) is a member; its shards heartbeat the row every lease_renew_s. A member whose
-- heartbeat is older than lease_ttl_s is gone: the partition ranges (control/policy/assignment.py)
-- are recomputed without it, and its ranges change hands through the epoch-fenced leases in
-- shard_leases once they are released or have expired. A clean stop deletes the row.
CREATE TABLE engine_members (
    id           text PRIMARY KEY,                 -- "<host>-<random>"; the assignment orders by it
    host         text NOT NULL,
    pid          integer NOT NULL,                 -- the supervising process on that host
    shards       integer NOT NULL CHECK (shards >= 1),
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
