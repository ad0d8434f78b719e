"""One blueprint per user layer; `layer_blueprint` gives each the same role gate."""
from flask import Blueprint
from flask_login import current_user

from app.auth.scope import require_role
from app.extensions import login_manager


def layer_blueprint(role: str, url_prefix: str, *, name: str | None = None) -> Blueprint:
    """A blueprint whose every route needs a login and the `role` somewhere (else 404).

    It is named after the role unless `name` says otherwise (the administration pages are
    gated by the agent role: `app/layers/admin`).
    """
    bp = Blueprint(name or role, __name__, url_prefix=url_prefix)

    @bp.before_request
    def gate():
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        require_role(current_user, role)
        return None

    return bp


def unit_page(unit_id: int, roles: tuple[str, ...], layer: str):
    """Render one unit's balances and recent activity, if the user's `roles` cover it."""
    from app.auth.scope import unit_or_404
    from app.extensions import db
    from app.htmx import render
    from app.reports.summaries import recent_pocket_activity, unit_cards

    found = unit_or_404(db.session, current_user, unit_id, roles)
    card = unit_cards(db.session, [found])[0]
    activity = recent_pocket_activity(db.session, [p.account_id for p in card.pockets], limit=20)
    return render("unit.html", "balances", card=card, activity=activity, layer=layer)
