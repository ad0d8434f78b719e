"""Analytics fixtures: the owner layer's landlord (three units in a Nairobi estate, a neighbour and
another owner's estate) whose figures the tests compute by hand."""
from tests.owner.conftest import landlord  # noqa: F401
from tests.web.conftest import _fresh_rate_limits, committed  # noqa: F401
