"""Family pages: the balances of every unit the person was granted."""
from flask_login import current_user

from app.auth.scope import visible_units
from app.extensions import db
from app.htmx import render
from app.layers import unit_page
from app.layers.family import bp
from app.reports.summaries import unit_cards
from app.reports.wallet_totals import commodity_totals

ROLES = ("family",)


@bp.get("/")
def index():
    cards = unit_cards(db.session, visible_units(db.session, current_user, ROLES))
    return render("family/index.html", cards=cards, totals=commodity_totals(cards))


@bp.get("/units/<int:unit_id>")
def unit(unit_id: int):
    return unit_page(unit_id, ROLES, "family")
