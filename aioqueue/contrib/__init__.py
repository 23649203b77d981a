"""Optional integrations (each needs its extra): Prometheus metrics, OpenTelemetry spans."""
