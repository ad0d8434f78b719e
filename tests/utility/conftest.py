"""Utility layer fixtures: the web fixtures (committed sessions, signed-in clients)."""
from tests.web.conftest import _fresh_rate_limits, committed, login, new_client  # noqa: F401  (fixtures)
