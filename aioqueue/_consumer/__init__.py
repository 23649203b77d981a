"""The consumer's hot path: producer (claims), executor (runs one job), completer, heartbeat."""
