"""Tenant statements: the unit's months, each issued statement (or a provisional one) as a PDF."""
from io import BytesIO

from flask import abort, send_file
from flask_login import current_user

from app.auth.scope import unit_or_404
from app.extensions import db
from app.htmx import render
from app.layers.tenant import bp
from app.reports.export import requested_format, respond
from app.reports.statement_runs import TRANSACTION_COLUMNS, statement_pdf, unit_statement_months, unit_transactions
from app.reports.statements import StatementPeriodError

ROLES = ("tenant",)


@bp.get("/units/<int:unit_id>/statements")
def statements(unit_id: int):
    unit = unit_or_404(db.session, current_user, unit_id, ROLES)
    return render("statements/unit.html", unit=unit, months=unit_statement_months(db.session, unit),
                  layer="tenant")


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
