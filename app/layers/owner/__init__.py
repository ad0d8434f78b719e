"""Owner layer (O): a landlord's units across estates."""
from app.layers import layer_blueprint

bp = layer_blueprint("owner", "/owner")

from app.layers.owner import views  # noqa: E402,F401
from app.layers.owner import statements  # noqa: E402,F401
from app.layers.owner import reconciliation  # noqa: E402,F401
from app.layers.owner import usage  # noqa: E402,F401
from app.layers.owner import vacancy  # noqa: E402,F401
