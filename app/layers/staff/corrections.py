"""Staff corrections: a ledger transaction's page with its reversal and reassignment forms,
the reversals waiting for a second staff member's approval, and the SparkMeter reversal retry."""
from __future__ import annotations

from flask import abort, flash, request, url_for
from flask_babel import gettext, lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select

from app.extensions import db
from app.htmx import redirect, render
from app.i18n.label_texts import N_
from app.layers.export import requested_format, respond, titled
from app.layers.staff import bp
from app.i18n.stored import render_stored
from app.labels import label
from app.models import Estate, LedgerTransaction, Unit
from app.models.corrections import Correction
from app.models.meter import UTILITIES
from app.payments.corrections import (CorrectionError, approval_threshold, approve_correction,
                                      decline_correction, payment_of, request_reversal,
                                      reversal_of, transaction_size, why_not_reversible)
from app.payments.vendor_credit import reverse_vendor_payment
from app.reports.export import Column, money_column
from app.routing import whole_number

POSTING_COLUMNS = [
    Column(_l("Account"), lambda p: p.account.name),
    Column(_l("Account kind"), lambda p: label("account_kind", p.account.kind)),
    Column(_l("Pocket"), lambda p: label("pocket", p.account.utility)),
    money_column(_l("Amount"), lambda p: p.amount, lambda p: p.commodity),
]
CORRECTION_COLUMNS = [
    Column(_l("Request"), lambda c: c.id, numeric=True),
    Column(_l("Asked at"), lambda c: c.requested_at),
    Column(_l("Estate"), lambda c: c.estate.name),
    Column(_l("Transaction"), lambda c: c.transaction_id, numeric=True),
    Column(_l("Kind"), lambda c: label("correction_kind", c.kind)),
    Column(_l("To unit"), lambda c: c.target_unit.number if c.target_unit else ""),
    money_column(_l("Amount"), lambda c: c.amount, lambda c: c.estate.currency),
    Column(_l("Reason"), lambda c: c.reason),
    Column(_l("Asked by"), lambda c: c.requested_by.email),
    Column(_l("Status"), lambda c: label("correction_status", c.status)),
    Column(_l("Decided by"), lambda c: c.decided_by.email if c.decided_by else ""),
    Column(_l("SparkMeter"), lambda c: label("vendor_reversal", c.vendor_status)),
]
RECENT = 50


@bp.get("/transactions/<bigint:tx_id>")
def transaction(tx_id: int):
    return _transaction_page(tx_id)


def _transaction_page(tx_id: int, *, errors=None, form=None, code: int = 200):
    txn = db.session.get(LedgerTransaction, tx_id) or abort(404)
    estate = db.session.get(Estate, txn.estate_id)
    fmt = requested_format()
    if fmt:
        return respond(txn.postings, POSTING_COLUMNS, titled(N_("Transaction %(id)s %(estate)s"), id=txn.id, estate=estate.code), fmt,
                       subtitle=txn.memo, timezone=estate.timezone)
    payment = payment_of(db.session, txn.id)
    corrections = db.session.scalars(select(Correction).where(Correction.transaction_id == txn.id)
                                     .order_by(Correction.id.desc())).all()
    units = db.session.execute(select(Unit.id, Unit.number).where(Unit.estate_id == estate.id)
                               .order_by(Unit.number)).all()
    response = render(
        "staff/transaction.html", txn=txn, estate=estate, payment=payment, corrections=corrections,
        reversed_by=reversal_of(db.session, txn.id), refusal=why_not_reversible(db.session, txn),
        original=db.session.get(LedgerTransaction, txn.reverses_id) if txn.reverses_id else None,
        size=transaction_size(txn, estate), threshold=approval_threshold(db.session, estate.id),
        units=units, utilities=UTILITIES, errors=errors or {}, form=form or {})
    response.status_code = code
    return response


@bp.post("/transactions/<bigint:tx_id>/reverse")
def reverse_transaction(tx_id: int):
    db.session.get(LedgerTransaction, tx_id) or abort(404)
    form = {name: request.form.get(name, "")[:1000] for name in ("reason", "unit_id", "utility", "action")}
    target = None
    if form["action"] == "reassign":
        target = _int(form["unit_id"])
        if target is None:
            return _transaction_page(tx_id, errors={"unit_id": gettext("Choose the unit the payment belongs to.")},
                                     form=form, code=400)
    try:
        outcome = request_reversal(db.session, tx_id, form["reason"], user_id=current_user.id,
                                   target_unit_id=target, target_utility=form["utility"] or None)
    except CorrectionError as error:
        db.session.rollback()
        return _transaction_page(tx_id, errors=error.errors, form=form, code=400)
    flash(outcome.message, "success")
    return redirect(url_for("staff.transaction", tx_id=tx_id))


@bp.get("/corrections")
def corrections():
    pending = db.session.scalars(select(Correction).where(Correction.status == "pending")
                                 .order_by(Correction.requested_at)).all()
    recent = db.session.scalars(select(Correction).where(Correction.status != "pending")
                                .order_by(Correction.id.desc()).limit(RECENT)).all()
    fmt = requested_format()
    if fmt:
        wanted = request.args.get("table")
        rows, title = (recent, N_("Corrections")) if wanted == "recent" else (pending, N_("Reversals waiting for approval"))
        return respond(rows, CORRECTION_COLUMNS, title, fmt)
    return render("staff/corrections.html", "pending", pending=pending, recent=recent, errors={})


@bp.post("/corrections/<int:correction_id>/approve")
def approve(correction_id: int):
    return _decide(correction_id, lambda: approve_correction(db.session, correction_id, user_id=current_user.id))


@bp.post("/corrections/<int:correction_id>/decline")
def decline(correction_id: int):
    note = request.form.get("note", "")[:1000]
    return _decide(correction_id, lambda: decline_correction(db.session, correction_id,
                                                             user_id=current_user.id, note=note))


@bp.post("/corrections/<int:correction_id>/vendor")
def retry_vendor_reversal(correction_id: int):
    correction = db.session.get(Correction, correction_id) or abort(404)
    if correction.status != "done" or correction.vendor_status not in ("queued", "failed"):
        flash(gettext("Nothing to send to SparkMeter for this correction."), "error")
        return redirect(url_for("staff.transaction", tx_id=correction.transaction_id))
    result = reverse_vendor_payment(db.session, correction)
    flash(gettext("SparkMeter: %(result)s", result=render_stored(result.message)), "success" if result.ok else "error")
    return redirect(url_for("staff.transaction", tx_id=correction.transaction_id))


def _decide(correction_id: int, action):
    db.session.get(Correction, correction_id) or abort(404)
    try:
        outcome = action()
    except CorrectionError as error:
        db.session.rollback()
        flash(render_stored(str(error)), "error")
        response = corrections()
        response.status_code = 400
        return response
    flash(outcome.message, "success")
    return redirect(url_for("staff.corrections"))


def _int(text: str) -> int | None:
    return whole_number(text, 1)
