"""Fixtures for the report tests: the web tests' committed data and sign-in, the statements' SMTP inbox."""
from tests.statements.test_statement_runs import smtp  # noqa: F401
from tests.web.conftest import _fresh_rate_limits, committed, login, new_client, world  # noqa: F401
