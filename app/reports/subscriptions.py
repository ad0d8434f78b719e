"""Report subscriptions (placeholder while being written)."""
