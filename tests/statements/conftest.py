"""The web fixtures (committed data, signing in, the scope world) for the statement page tests."""
from tests.web.conftest import _fresh_rate_limits, committed, login, new_client, world  # noqa: F401  (pytest finds fixtures by name)
