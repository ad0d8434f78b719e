"""JSON API, inbound webhooks and the health check."""
