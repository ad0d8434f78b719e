"""Owner pages: portfolio of owned units with occupancy, tenant and balances."""
from flask_login import current_user

from app.auth.scope import visible_units
from app.extensions import db
from app.htmx import render
from app.layers import unit_page
from app.layers.owner import bp
from app.reports.summaries import unit_cards

ROLES = ("owner",)


@bp.get("/")
def index():
    cards = unit_cards(db.session, visible_units(db.session, current_user, ROLES))
    occupied = sum(1 for c in cards if c.unit.occupancy_status == "occupied")
    return render("owner/index.html", cards=cards, occupied=occupied)


@bp.get("/units/<int:unit_id>")
def unit(unit_id: int):
    return unit_page(unit_id, ROLES, "owner")
