"""Owner statements: the unit's months and PDFs (shared with tenants), and the portfolio export."""
from app.analytics.portfolio import all_units
from app.extensions import db
from app.i18n.label_texts import N_
from app.labels import label
from app.layers.export import requested_format, respond
from app.layers.owner import bp
from app.layers.owner.selection import current_selection
from app.layers.unit_statements import add_unit_statement_routes
from app.money import format_amount
from app.reports.export import Column
from app.reports.summaries import unit_cards

ROLES = ("owner",)


add_unit_statement_routes(bp, ROLES)


@bp.get("/units/export")
def units_export():
    """The portfolio table of the owner page (all its pages, `?estate=` as on the page) as CSV or PDF."""
    cards = unit_cards(db.session, all_units(db.session, current_selection().unit_ids))
    return respond(cards, PORTFOLIO_COLUMNS, N_("My properties"), requested_format() or "csv")


PORTFOLIO_COLUMNS = [
    Column("Unit", lambda c: c.unit.number),
    Column("Estate", lambda c: c.estate.name),
    Column("Status", lambda c: label("occupancy", c.unit.occupancy_status)),
    Column("Tenant", lambda c: c.tenant_name),
    Column("Balances", lambda c: "; ".join(
        f"{label('pocket', p.utility)} {format_amount(p.balance, p.commodity)}" for p in c.pockets)),
    Column(N_("Last reading (UTC)"), lambda c: c.last_reading_at),
]
