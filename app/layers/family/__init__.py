"""Family layer (F): wallets a person may view or top up for others."""
from app.layers import layer_blueprint

bp = layer_blueprint("family", "/family")

from app.layers.family import views  # noqa: E402,F401
