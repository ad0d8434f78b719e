"""Managing agent pages: every unit of a managed estate with tenant, occupancy and balances."""
from flask_login import current_user

from app.auth.scope import estate_or_404, visible_estates
from app.extensions import db
from app.htmx import render
from app.layers.agent import bp
from app.reports.summaries import estate_figures, unit_cards

ROLES = ("agent",)


@bp.get("/")
def index():
    figures = [estate_figures(db.session, e) for e in visible_estates(db.session, current_user, ROLES)]
    return render("agent/index.html", figures=figures)


@bp.get("/estates/<int:estate_id>")
def estate(estate_id: int):
    found = estate_or_404(db.session, current_user, estate_id, ROLES)
    return render("agent/estate.html", figures=estate_figures(db.session, found),
                  cards=unit_cards(db.session, list(found.units)))
