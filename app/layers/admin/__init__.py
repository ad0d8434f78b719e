"""Estate administration (X6): estates, units, meters, people, access, imports, corrections.

One set of pages for staff (every estate) and managing agents (the estates they manage):
the blueprint is gated by the agent role, which staff pass like every layer, and every
object is found through `app.auth.scope` with ``ROLES`` so another estate's id is a 404.
Estate creation and editing, corrections and other staff-only actions check
`current_user.is_staff` themselves (`staff_only()`). The work lives in `app/estates/`.
"""
from flask import abort
from flask_login import current_user

from app.layers import layer_blueprint

ROLES = ("agent",)  # the grants that reach an estate's administration (staff reach all)

bp = layer_blueprint("agent", "/admin", name="admin")


def staff_only() -> None:
    """Abort with 404 unless the signed-in user is staff (agents never see staff-only pages)."""
    if not current_user.is_staff:
        abort(404)


from app.layers.admin import views  # noqa: E402,F401
from app.layers.admin import meters  # noqa: E402,F401
from app.layers.admin import estates  # noqa: E402,F401
from app.layers.admin import units  # noqa: E402,F401
from app.layers.admin import people  # noqa: E402,F401
from app.layers.admin import imports  # noqa: E402,F401
from app.layers.admin import notes  # noqa: E402,F401
from app.layers.admin import tariff_classes  # noqa: E402,F401
from app.layers.admin import arrears  # noqa: E402,F401  (issue 16)
from app.layers.admin import cohorts  # noqa: E402,F401  (issue 16, A5)
