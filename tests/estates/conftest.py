"""Estate administration fixtures: the web helpers of tests/web, offered to these tests too."""
from tests.web.conftest import _fresh_rate_limits, committed, login, new_client, world  # noqa: F401  (fixtures)
