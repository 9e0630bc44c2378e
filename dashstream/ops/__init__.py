"""What operators read: log output (plain or JSON, bounded, never blocking the hub) and
Prometheus metrics."""
