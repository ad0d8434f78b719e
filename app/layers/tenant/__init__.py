"""Tenant layer (T): the units a person rents."""
from app.layers import layer_blueprint

bp = layer_blueprint("tenant", "/tenant")

from app.layers.tenant import views  # noqa: E402,F401  (routes attach to bp)
from app.layers.tenant import dashboard  # noqa: E402,F401
from app.layers.tenant import usage  # noqa: E402,F401
from app.layers.tenant import history  # noqa: E402,F401
from app.layers.tenant import alerts  # noqa: E402,F401
from app.layers.tenant import statements  # noqa: E402,F401
from app.layers.tenant import payments  # noqa: E402,F401
