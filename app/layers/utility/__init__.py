"""Utility layer (U): bulk supply against unit meters."""
from app.layers import layer_blueprint

bp = layer_blueprint("utility", "/utility")

from app.layers.utility import views  # noqa: E402,F401
from app.layers.utility import losses, revenue  # noqa: E402,F401  (issue 19)
from app.layers.utility import demand  # noqa: E402,F401  (issue 19)
from app.layers.utility import finance  # noqa: E402,F401  (issue 19)
from app.layers.utility import profiles  # noqa: E402,F401  (issue 19: consumption profiles)
from app.layers.utility import carbon  # noqa: E402,F401  (issue 19: carbon footprint)
from app.layers.utility import solar  # noqa: E402,F401  (issue 19: shared solar)
