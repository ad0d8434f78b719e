"""A unit's statements and transaction export, shared by the tenant and owner layers.

`add_unit_statement_routes(bp, roles)` adds the same three routes to a layer blueprint;
each checks the unit against the user's grants in that layer's roles.
"""
from io import BytesIO

from flask import Blueprint, abort, send_file
from flask_login import current_user

from app.auth.scope import unit_or_404
from app.extensions import db
from app.htmx import render
from app.i18n.label_texts import N_
from app.layers.export import requested_format, respond, titled
from app.periods import parse_period
from app.reports.history import overlaps, viewer_windows
from app.statements.figures import StatementPeriodError, month_bounds
from app.statements.runs import (TRANSACTION_COLUMNS, sees_levies, statement_pdf, unit_statement_months,
                                unit_transactions)


def add_unit_statement_routes(bp: Blueprint, roles: tuple[str, ...], transactions_page=None) -> None:
    """Register statements, statement_download and transactions_export on `bp`.

    `transactions_page(unit)`, when given, answers the transactions URL without `?format=`
    (the tenant's history page); with a format it is always the CSV/PDF export.
    """

    def visible(unit, period: str, windows) -> bool:
        """A tenant gets the months their tenancy touches; others every month."""
        start, end = month_bounds(period, unit.estate.timezone)
        return overlaps(start, end, windows)

    def statements(unit_id: int):
        unit = unit_or_404(db.session, current_user, unit_id, roles)
        windows = viewer_windows(db.session, current_user, unit)
        months = [m for m in unit_statement_months(db.session, unit) if visible(unit, m.period, windows)]
        return render("statements/unit.html", unit=unit, months=months, layer=bp.name)

    def statement_download(unit_id: int, period: str):
        unit = unit_or_404(db.session, current_user, unit_id, roles)
        parse_period(period)  # a malformed month is a 400 before any query sees it
        try:
            if not visible(unit, period, viewer_windows(db.session, current_user, unit)):
                abort(404)
            pdf, filename, _ = statement_pdf(db.session, unit, period,
                                             levies=sees_levies(db.session, current_user, unit))
        except StatementPeriodError:
            abort(404)
        return send_file(BytesIO(pdf), mimetype="application/pdf", download_name=filename, max_age=0)

    def transactions_export(unit_id: int):
        """The unit's transactions (as on its page, up to a year's worth) as CSV or PDF."""
        unit = unit_or_404(db.session, current_user, unit_id, roles)
        fmt = requested_format()
        if fmt is None and transactions_page is not None:
            return transactions_page(unit)
        rows = unit_transactions(db.session, unit, windows=viewer_windows(db.session, current_user, unit))
        return respond(rows, TRANSACTION_COLUMNS, titled(N_("Transactions unit %(unit)s"), unit=unit.number), fmt or "csv",
                       subtitle=f"{unit.estate.name} · times in {unit.estate.timezone}",
                       timezone=unit.estate.timezone)

    bp.add_url_rule("/units/<int:unit_id>/statements", view_func=statements)
    bp.add_url_rule("/units/<int:unit_id>/statements/<period>.pdf", view_func=statement_download)
    bp.add_url_rule("/units/<int:unit_id>/transactions", view_func=transactions_export)
