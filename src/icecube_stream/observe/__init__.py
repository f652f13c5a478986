"""Observability helpers: metrics endpoints, consumer lag, the truth checker, active alerts."""
