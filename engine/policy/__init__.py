"""Pure, I/O-free delivery policies: timers, backoff, rate limits, breakers, routing, signing, filters."""
