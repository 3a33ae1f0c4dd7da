"""How much of a shard's memory one target may hold, and how many requests it may have in flight.

A shard holds at most `max_buffered` tasks. Without a per-target cap, one endpoint with a deep
backlog that it drains slowly (a low `rateLimitPerSec`, an open breaker, a slow or hanging receiver,
a failing FIFO head) fills the whole buffer and every other endpoint of the shard waits for it. So
each target may hold about what it can send in the next couple of seconds, never more than a share
of the buffer; the claim skips targets at their cap and their backlog stays in Postgres.

In-flight slots are shared the same way: while the shard's slots are mostly free a target may use
its own limit; once they run short, each target in turn gets an equal share, so a few hanging
receivers cannot occupy every connection until they time out.
"""

from __future__ import annotations

import math

WINDOW_S = 2.0          # a target holds about what it can send in this long
SHARE_DIVISOR = 4       # and never more than this fraction of the shard's buffer
LATENCY_ALPHA = 0.2     # weight of the newest response time in the moving average


def hold_cap(*, max_buffered: int, max_in_flight: int, rate_per_s: int, breaker_open: bool,
             latency_ms: float | None) -> int:
    """Most tasks one target may hold in memory, in flight included.

    `max_in_flight` is the target's own in-flight limit; `latency_ms` the moving average of its
    response times (None before the first answer: assume it is fast)."""
    share = max(1, max_buffered // SHARE_DIVISOR)
    if breaker_open:
        return 1                       # only the probe can go; the rest waits in Postgres
    concurrency = max(1, max_in_flight)
    if latency_ms is None or latency_ms <= 0:
        throughput = math.inf
    else:
        throughput = concurrency * 1000.0 / latency_ms
    floor = min(concurrency, share)
    if rate_per_s > 0:
        throughput = min(throughput, float(rate_per_s))
        floor = 1
    if math.isinf(throughput):
        return share
    return max(floor, min(share, math.ceil(throughput * WINDOW_S)))


def in_flight_limit(*, own_limit: int, shard_in_flight: int, shard_limit: int, active_targets: int) -> int:
    """Requests one target may have in flight now: its own limit while the shard has room (under
    three quarters used), else an equal share of the shard's slots among the targets with work."""
    if shard_in_flight * 4 < shard_limit * 3:
        return own_limit
    return max(1, min(own_limit, shard_limit // max(1, active_targets)))


def updated_latency(previous: float | None, sample_ms: float) -> float:
    """Exponential moving average of response times (the first sample stands alone)."""
    if previous is None:
        return sample_ms
    return previous + LATENCY_ALPHA * (sample_ms - previous)
