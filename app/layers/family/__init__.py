"""Family layer (F): wallets shared with a person (view, top up, manage), groups, limits, alerts."""
from app.layers import layer_blueprint

bp = layer_blueprint("family", "/family")

from app.layers.family import views  # noqa: E402,F401
from app.layers.family import access  # noqa: E402,F401
from app.layers.family import limits  # noqa: E402,F401
from app.layers.family import topup  # noqa: E402,F401
from app.layers.family import groups  # noqa: E402,F401
from app.layers.family import distribute  # noqa: E402,F401  issue 17: group top-up
