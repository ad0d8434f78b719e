"""Managing agent layer (A): estates managed, unit by unit."""
from app.layers import layer_blueprint

bp = layer_blueprint("agent", "/agent")

from app.layers.agent import views  # noqa: E402,F401
from app.layers.agent import units  # noqa: E402,F401
from app.layers.agent import bulk  # noqa: E402,F401
from app.layers.agent import notices  # noqa: E402,F401  (issue 15: outage and maintenance notices)
