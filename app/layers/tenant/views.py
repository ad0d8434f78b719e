"""Tenant landing page: a card per unit the tenant rents, linking to each unit's dashboard."""
from flask_login import current_user

from app.auth.scope import visible_units
from app.extensions import db
from app.htmx import render
from app.layers.tenant import bp
from app.reports.summaries import unit_cards

ROLES = ("tenant",)


@bp.get("/")
def index():
    cards = unit_cards(db.session, visible_units(db.session, current_user, ROLES))
    from app.billing.debt import debts, unit_debts  # A4: a debt line per unit that owes (issue 16)
    owing = unit_debts(debts(db.session, {c.estate for c in cards}, unit_ids={c.unit.id for c in cards}))
    return render("tenant/index.html", "cards", cards=cards, owing=owing)
