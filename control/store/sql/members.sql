-- Engine membership (engine/membership.py, `mittr status`). See migration 028.

-- name: member_join
-- A member's first shard ready to take a range registers it (so others do not give ranges up to a
-- member still starting); also a member coming back after its row was forgotten.
INSERT INTO engine_members (id, host, pid, shards)
VALUES ($1, $2, $3, $4)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), shards = EXCLUDED.shards;

-- name: member_beat
UPDATE engine_members SET heartbeat_at = now() WHERE id = $1 RETURNING id;

-- name: live_members
-- The members the assignment is computed from: heartbeat within the expiry ($1 seconds).
SELECT id, shards FROM engine_members
WHERE heartbeat_at > now() - make_interval(secs => $1)
ORDER BY id;

-- name: member_leave
-- A clean stop: the member is gone at once, not after the expiry.
DELETE FROM engine_members WHERE id = $1;

-- name: forget_members
-- Rows of members dead for long ($1 seconds) are dropped; recently expired ones stay visible in status.
DELETE FROM engine_members WHERE heartbeat_at < now() - make_interval(secs => $1);

-- name: status_members
SELECT id, host, pid, shards, started_at, heartbeat_at,
       extract(epoch FROM now() - heartbeat_at)::float8 AS heartbeat_age_s,
       heartbeat_at > now() - make_interval(secs => $1) AS live
FROM engine_members ORDER BY id;

-- name: status_leases
-- Every lease with its age and the work waiting in its range (not yet delivered or dead).
SELECT l.slot, l.lo, l.hi, l.owner, l.epoch, l.expires_at > now() AS live,
       extract(epoch FROM now() - l.renewed_at)::float8 AS renewed_age_s,
       extract(epoch FROM l.expires_at - now())::float8 AS expires_in_s,
       (SELECT count(*) FROM tasks t
        WHERE t.partition >= l.lo AND t.partition < l.hi
          AND t.status IN ('queued', 'failed', 'delivering'))::bigint AS backlog
FROM shard_leases l ORDER BY l.lo, l.hi;

-- name: status_unleased_backlog
-- Work in partitions no live lease covers (a range between owners, or no engine running).
SELECT count(*)::bigint FROM tasks t
WHERE t.status IN ('queued', 'failed', 'delivering')
  AND NOT EXISTS (SELECT 1 FROM shard_leases l
                  WHERE l.expires_at > now() AND t.partition >= l.lo AND t.partition < l.hi);
