"""The consumer: producer (claims) → foreman (owns the jobs held) → executor (runs one job) →
completer; the heartbeat renews the leases of the jobs the foreman holds."""
