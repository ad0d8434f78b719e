"""Staff layer: operations across every estate (ledger, jobs, flags, audit)."""
from app.layers import layer_blueprint

bp = layer_blueprint("staff", "/staff")

from app.layers.staff import views  # noqa: E402,F401
from app.layers.staff import statements  # noqa: E402,F401
from app.layers.staff import sources  # noqa: E402,F401
from app.layers.staff import payments  # noqa: E402,F401
from app.layers.staff import metering  # noqa: E402,F401
from app.layers.staff import tariffs  # noqa: E402,F401
from app.layers.staff import corrections  # noqa: E402,F401
from app.layers.staff import jobs  # noqa: E402,F401
from app.layers.staff import settlement  # noqa: E402,F401  (issue 20)
from app.layers.staff import reconciliation  # noqa: E402,F401  (issue 20)
from app.layers.staff import emission_factors  # noqa: E402,F401  (issue 19: carbon)
from app.layers.staff import backfills  # noqa: E402,F401  (issue 22)
