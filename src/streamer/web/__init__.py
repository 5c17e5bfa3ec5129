"""HTTP side of the monitor: /metrics, health checks, and the status page (``status``)."""
