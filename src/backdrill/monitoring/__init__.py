"""What the outside world is told: webhooks and Prometheus metrics."""
