"""The daemon's HTTP side: Prometheus metrics and the read-only dashboard."""
