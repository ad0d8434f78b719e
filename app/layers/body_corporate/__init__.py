"""Body corporate layer (B): scheme figures for the estates a trustee serves."""
from app.layers import layer_blueprint

bp = layer_blueprint("body_corporate", "/body-corporate")

from app.layers.body_corporate import views  # noqa: E402,F401
from app.layers.body_corporate import statements  # noqa: E402,F401
from app.layers.body_corporate import levies  # noqa: E402,F401
