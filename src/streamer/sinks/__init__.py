"""Event sinks: metrics, logs, reports, alerts. Each consumes the session's events."""
