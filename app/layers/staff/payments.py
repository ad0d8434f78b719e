"""Staff payment pages: the list with filters, the unmatched queue of every source with its
one assign form, EFT statement upload and deposit entry, confirming EFT rows, and the
SparkMeter credit push."""
from __future__ import annotations

import csv

from flask import abort, flash, request, url_for
from flask_babel import gettext, lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select

from app.auth.scope import unit_or_404
from app.extensions import db
from app.htmx import redirect, render
from app.layers.staff import bp
from app.models import Estate, Unit
from app.models.meter import UTILITIES
from app.models.payments import PAYMENT_STATUSES, PROVIDERS, Payment
from app.payments import eft
from app.payments import PaymentError
from app.payments.mpesa_sms import suspicious_messages
from app.payments.payfast import checkout_expiry_cutoff
from app.payments.unmatched import SOURCES as UNMATCHED_SOURCES, assign_unmatched, unmatched_payments
from app.payments.vendor_credit import push_payment, vendor_customer_code

from app.i18n.stored import render_stored
from app.labels import label
from app.payments.credit import PROVIDER_LABELS
from app.i18n.label_texts import N_
from app.layers.export import requested_format, respond
from app.reports.export import Column, money_column
from app.routing import whole_number

PAGE_SIZE = 100
PROVIDER_NAMES = PROVIDER_LABELS  # every provider in PROVIDERS, by its label
PAYMENT_COLUMNS = [
    Column(_l("Received"), lambda p: p.paid_at or p.created_at), Column(_l("Provider"), lambda p: PROVIDER_NAMES.get(p.provider, p.provider)),
    Column(_l("Provider ref"), lambda p: p.provider_ref or ""), Column(_l("Payer"), lambda p: p.payer_name or ""),
    Column(_l("Payer contact"), lambda p: p.payer_phone or p.payer_email or ""), Column(_l("Reference"), lambda p: p.reference or ""),
    Column(_l("Estate"), lambda p: p.estate.name if p.estate else ""), Column(_l("Unit"), lambda p: p.unit.number if p.unit else ""),
    money_column(_l("Amount"), lambda p: p.amount, lambda p: p.currency or ""),
    Column(_l("Status"), lambda p: label("payment_status", p.status)), Column(_l("Why"), lambda p: p.status_reason or ""),
    Column(_l("SparkMeter"), lambda p: p.vendor_push_status or ""),
]
UNMATCHED_COLUMNS = [
    Column(_l("Received"), lambda u: u.received_at), Column(_l("Source"), lambda u: u.label), Column(_l("Reference"), lambda u: u.reference),
    Column(_l("Payer"), lambda u: u.payer or ""), money_column(_l("Amount"), lambda u: u.amount, lambda u: u.currency or ""),
    Column(_l("Why unmatched"), lambda u: u.reason or ""),
]
SUSPICIOUS_COLUMNS = [
    Column(_l("Received"), lambda m: m.received_at), Column(_l("From"), lambda m: m.from_number or ""),
    Column(_l("Message"), lambda m: m.content), Column(_l("Outcome"), lambda m: m.outcome), Column(_l("Why"), lambda m: m.reason or ""),
]


STATUS_FILTERS = (*PAYMENT_STATUSES, "expired")  # "expired": a derived state of "pending"


@bp.get("/payments")
def payments():
    return _page(request.args.get("provider", ""), request.args.get("status", ""))


def _page(provider: str, status: str, *, report=None, errors=None, form=None, code: int = 200):
    """The payments page (or its table for htmx); a refused form comes back with `errors`
    keyed by field and what was typed in `form`, with status 400."""
    cutoff = checkout_expiry_cutoff()
    query = select(Payment).order_by(Payment.id.desc()).limit(PAGE_SIZE)
    if provider in PROVIDERS:
        query = query.where(Payment.provider == provider)
    if status == "expired":
        query = query.where(Payment.expired(cutoff))
    elif status in PAYMENT_STATUSES:
        query = query.where(Payment.status == status, Payment.not_expired(cutoff))
    else:
        query = query.where(Payment.not_expired(cutoff))  # abandoned checkouts: under "expired"
    rows = db.session.scalars(query).all()
    suspicious = suspicious_messages(db.session) if provider in ("", "mpesa") else []
    fmt = requested_format() if request.method == "GET" else None
    if fmt:
        table = request.args.get("table")
        if table == "unmatched":
            return respond(unmatched_payments(db.session), UNMATCHED_COLUMNS, N_("Unmatched payments"), fmt)
        if table == "suspicious":
            return respond(suspicious, SUSPICIOUS_COLUMNS, N_("Suspicious and refused SMS"), fmt)
        return respond(rows, PAYMENT_COLUMNS, "Payments", fmt)
    response = render("staff/payments/index.html", "payment_table", rows=rows, units=_unit_choices(),
                      unmatched=unmatched_payments(db.session), expired_before=cutoff, suspicious=suspicious,
                      providers=PROVIDERS, provider_names=PROVIDER_NAMES, statuses=STATUS_FILTERS, utilities=UTILITIES,
                      provider=provider, status=status, report=report, errors=errors or {}, form=form or {})
    response.status_code = code
    return response


def _refused(message: str, provider: str = "", status: str = ""):
    """Bad input on a row's action: roll back, show the page again with the reason, 400.

    Rendered, not redirected: a redirect with status 400 is never followed, so the browser
    showed a bare "Redirecting…" page and the flashed message was lost."""
    db.session.rollback()
    flash(message, "error")
    return _page(provider, status, code=400)


@bp.post("/payments/assign")
def assign():
    """One assign flow for every unmatched payment (M-PESA, EFT, Koios, ThunderCloud)."""
    source = request.form.get("source", "payment")
    row_id = request.form.get("payment_id", type=int) or 0
    unit_id = request.form.get("unit_id", type=int) or 0
    utility = request.form.get("utility", "electricity")
    if source not in UNMATCHED_SOURCES or not row_id or not unit_id or utility not in UTILITIES:
        return _refused(gettext("Choose a unit and a utility."))
    unit = unit_or_404(db.session, current_user, unit_id, ("staff",))
    try:
        outcome = assign_unmatched(db.session, source, row_id, unit, utility, user_id=current_user.id)
    except PaymentError as error:
        return _refused(gettext("Not assigned: %(error)s", error=render_stored(str(error))))
    flash(outcome.message, "success")
    if source == "payment":
        _report_push(db.session.get(Payment, row_id))
    return redirect(url_for("staff.payments", _anchor="unmatched"))


@bp.post("/payments/eft/statement")
def eft_statement():
    upload = request.files.get("statement")
    if upload is None or not upload.filename:
        return _page("eft", "", errors={"statement": gettext("Choose a CSV bank statement to upload.")}, code=400)
    try:
        report = eft.import_statement(db.session, upload.read().decode("utf-8-sig", "replace"),
                                      current_user.id)
    except (eft.StatementError, csv.Error) as error:  # csv.Error: a file the csv module cannot read
        db.session.rollback()
        return _page("eft", "", errors={"statement": gettext("%(file)s was not imported: %(error)s.", file=upload.filename, error=error)},
                     code=400)
    return _page("eft", "", report=report)


DEPOSIT_FIELDS = ("bank_ref", "reference", "amount", "paid_on")


@bp.post("/payments/eft/deposit")
def eft_deposit():
    form = {name: request.form.get(name, "") for name in DEPOSIT_FIELDS}
    try:
        payment = eft.record_deposit(db.session, bank_ref=form["bank_ref"], amount=form["amount"],
                                     reference=form["reference"], paid_on=form["paid_on"],
                                     user_id=current_user.id)
    except (PaymentError, ValueError) as error:
        db.session.rollback()
        field = getattr(error, "field", None)
        return _page("eft", "", errors={field if field in DEPOSIT_FIELDS else "deposit": gettext("Not recorded: %(error)s.", error=render_stored(str(error)))},
                     form=form, code=400)
    flash(gettext("Deposit %(reference)s recorded (%(reason)s); confirm it to credit.", reference=payment.provider_ref,
                  reason=render_stored(payment.status_reason)), "success")
    return redirect(url_for("staff.payments", provider="eft", status=payment.status))


@bp.post("/payments/eft/confirm")
def eft_confirm():
    ids = [i for i in (whole_number(value, 1) for value in request.form.getlist("payment_id")) if i is not None]
    if not ids:
        return _refused(gettext("Tick the deposits to confirm."), provider="eft", status="to_confirm")
    outcomes = eft.confirm_payments(db.session, ids, current_user.id)
    credited = [pid for pid, outcome in outcomes if outcome == "credited"]
    problems = [f"#{pid}: {render_stored(outcome)}" for pid, outcome in outcomes if outcome != "credited"]
    flash(gettext("%(num)s deposit(s) credited.", num=len(credited))
          + (" " + gettext("Not credited: %(problems)s", problems="; ".join(problems)) if problems else ""),
          "success" if not problems else "error")
    for pid in credited:
        _report_push(db.session.get(Payment, pid))
    return redirect(url_for("staff.payments", provider="eft"))


@bp.post("/payments/push")
def vendor_push():
    payment = _payment_from_form()
    if not vendor_customer_code(db.session, payment):
        return _refused(gettext("This payment's unit has no SparkMeter meter."))
    result = push_payment(db.session, payment)
    flash(gettext("SparkMeter: %(result)s", result=render_stored(result.message)), "success" if result.ok else "error")
    return redirect(url_for("staff.payments"))


def _unit_choices() -> list:
    return db.session.execute(select(Unit.id, Unit.number, Estate.name).join(Estate)
                              .order_by(Estate.name, Unit.number)).all()


def _payment_from_form() -> Payment:
    return db.session.get(Payment, request.form.get("payment_id", type=int) or 0) or abort(404)


def _report_push(payment: Payment) -> None:
    """Say where the SparkMeter push that crediting queued stands (P5)."""
    db.session.refresh(payment)
    if payment.vendor_push_status == "queued":
        flash(gettext("SparkMeter: the credit push is queued; its result shows in the list."), "success")
    elif payment.vendor_push_status:
        flash(gettext("SparkMeter: %(result)s",
                      result=render_stored(payment.vendor_push_result) or payment.vendor_push_status),
              "success" if payment.vendor_push_status == "pushed" else "error")
