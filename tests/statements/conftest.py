"""The web fixtures (committed data, signing in, the scope world) for the statement page tests."""
from tests.web.conftest import (  # noqa: F401  (pytest finds fixtures by name)
    _fresh_rate_limits, committed, login, make_login, new_client, world,
)
