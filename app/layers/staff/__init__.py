"""Staff layer: operations across every estate (ledger, jobs, flags, audit)."""
from app.layers import layer_blueprint

bp = layer_blueprint("staff", "/staff")

from app.layers.staff import views  # noqa: E402,F401
