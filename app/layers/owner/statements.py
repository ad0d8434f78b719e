"""Owner statements: the unit's months, each issued statement (or a provisional one) as a PDF."""
from io import BytesIO

from flask import abort, send_file
from flask_login import current_user

from app.auth.scope import unit_or_404
from app.extensions import db
from app.htmx import render
from app.layers.owner import bp
from app.money import format_amount
from app.reports.export import Column, requested_format, respond
from app.reports.statement_runs import TRANSACTION_COLUMNS, statement_pdf, unit_statement_months, unit_transactions
from app.reports.statements import StatementPeriodError

ROLES = ("owner",)


@bp.get("/units/<int:unit_id>/statements")
def statements(unit_id: int):
    unit = unit_or_404(db.session, current_user, unit_id, ROLES)
    return render("statements/unit.html", unit=unit, months=unit_statement_months(db.session, unit),
                  layer="owner")


@bp.get("/units/<int:unit_id>/statements/<period>.pdf")
def statement_download(unit_id: int, period: str):
    unit = unit_or_404(db.session, current_user, unit_id, ROLES)
    try:
        pdf, filename, _ = statement_pdf(db.session, unit, period)
    except StatementPeriodError:
        abort(404)
    return send_file(BytesIO(pdf), mimetype="application/pdf", download_name=filename, max_age=0)


@bp.get("/units/<int:unit_id>/transactions")
def transactions_export(unit_id: int):
    """The unit's transactions (as on its page, up to a year's worth) as CSV or PDF."""
    unit = unit_or_404(db.session, current_user, unit_id, ROLES)
    rows = unit_transactions(db.session, unit)
    return respond(rows, TRANSACTION_COLUMNS, f"Transactions unit {unit.number}",
                   requested_format() or "csv", subtitle=f"{unit.estate.name} · times in UTC")


@bp.get("/units/export")
def units_export():
    """The portfolio table of the owner page as CSV or PDF."""
    from app.auth.scope import visible_units
    from app.reports.summaries import unit_cards

    cards = unit_cards(db.session, visible_units(db.session, current_user, ROLES))
    return respond(cards, PORTFOLIO_COLUMNS, "My properties", requested_format() or "csv")


PORTFOLIO_COLUMNS = [
    Column("Unit", lambda c: c.unit.number),
    Column("Estate", lambda c: c.estate.name),
    Column("Status", lambda c: c.unit.occupancy_status),
    Column("Tenant", lambda c: c.tenant_name),
    Column("Balances", lambda c: "; ".join(
        f"{p.utility.replace('_', ' ')} {format_amount(p.balance, p.commodity)}" for p in c.pockets)),
    Column("Last reading (UTC)", lambda c: c.last_reading_at),
]
