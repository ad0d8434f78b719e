"""Owner pages: the portfolio (O1) with its KPIs and unit table, and one unit's page."""

from app.analytics.portfolio import portfolio_figures, units_page
from app.extensions import db
from app.htmx import render
from app.layers import unit_page
from app.layers.owner import bp
from app.layers.owner.selection import ROLES, current_selection, int_arg
from app.reports.summaries import unit_cards


@bp.get("/")
def index():
    """The portfolio: KPIs over the selected estate (or all) and one page of the unit table."""
    selection = current_selection()
    page = int_arg("page", 1, 1)
    figures = portfolio_figures(db.session, selection.unit_ids)
    units, pages = units_page(db.session, selection.unit_ids, page, total=figures.units)
    return render("owner/index.html", "units", selection=selection, figures=figures,
                  cards=unit_cards(db.session, units), page=min(page, pages), pages=pages)


@bp.get("/units/<int:unit_id>")
def unit(unit_id: int):
    """One of the owner's units: balances and recent activity."""
    return unit_page(unit_id, ROLES, "owner")
