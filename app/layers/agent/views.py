"""Managing agent pages: every unit of a managed estate with tenant, occupancy and balances."""
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from app.auth.scope import estate_or_404, visible_estates
from app.extensions import db
from app.htmx import render
from app.layers.agent import bp
from app.labels import label
from app.i18n.label_texts import N_
from app.layers.export import requested_format, respond, titled
from app.models.meter import UTILITIES
from app.reports.export import Column, money_column
from app.reports.summaries import estate_figures, unit_cards

ROLES = ("agent",)


def _pocket(card, utility):
    return next((p for p in card.pockets if p.utility == utility), None)


def _balance_column(utility: str) -> Column:
    return money_column(label("pocket", utility), lambda c: getattr(_pocket(c, utility), "balance", None),
                        lambda c: getattr(_pocket(c, utility), "commodity", ""))


UNIT_COLUMNS = [
    Column(_l("Unit"), lambda c: c.unit.number), Column(_l("Status"), lambda c: label("occupancy", c.unit.occupancy_status)),
    Column(_l("Tenant"), lambda c: c.tenant_name or ""),
    *[_balance_column(utility) for utility in UTILITIES],
    Column(_l("Supply"), lambda c: "on" if c.supply_on else "off"), Column(_l("Last reading"), lambda c: c.last_reading_at),
]


@bp.get("/")
def index():
    figures = [estate_figures(db.session, e) for e in visible_estates(db.session, current_user, ROLES)]
    return render("agent/index.html", figures=figures)


@bp.get("/estates/<int:estate_id>")
def estate(estate_id: int):
    found = estate_or_404(db.session, current_user, estate_id, ROLES)
    cards = unit_cards(db.session, list(found.units))
    if fmt := requested_format():
        return respond(cards, UNIT_COLUMNS, titled(N_("Units %(estate)s"), estate=found.name), fmt, timezone=found.timezone)
    return render("agent/estate.html", figures=estate_figures(db.session, found), cards=cards)


# API keys for the agent's own estates (issue 21): the pages staff use, scoped to the agent.
from app.layers.api_keys import register as register_api_key_pages  # noqa: E402

register_api_key_pages(bp, "agent", "/api-keys")
from app.layers.webhooks_pages import register as register_webhook_pages  # noqa: E402

register_webhook_pages(bp, "agent", "/webhooks")
