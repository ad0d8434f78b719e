"""Tenant transaction history (T3): running balance, filters, paging, and why each charge is what it is."""
from flask import abort, request
from flask_login import current_user

from app.auth.scope import unit_or_404
from app.extensions import db
from app.htmx import render
from app.layers.tenant import bp
from app.layers.tenant.views import ROLES
from app.models import Unit
from app.reports.history import (
    HistoryFilterError, explain_transaction, parse_filters, transaction_history, viewer_windows,
)
from app.reports.summaries import pocket_choices


def transactions_page(unit: Unit):
    """The history page of a unit already checked for scope (served at the transactions URL)."""
    try:
        filters = parse_filters(request.args)
        history = transaction_history(db.session, unit, filters,
                                      windows=viewer_windows(db.session, current_user, unit))
    except HistoryFilterError as error:
        abort(400, str(error))
    return render("tenant/transactions.html", "history", unit=unit, history=history,
                  utilities=pocket_choices(db.session, unit), layer="tenant")


@bp.get("/units/<int:unit_id>/transactions/<bigint:tx_id>")
def transaction(unit_id: int, tx_id: int):
    unit = unit_or_404(db.session, current_user, unit_id, ROLES)
    explanation = explain_transaction(db.session, unit, tx_id, windows=viewer_windows(db.session, current_user, unit))
    if explanation is None:
        abort(404)
    return render("tenant/transaction.html", "explanation", unit=unit, x=explanation)
