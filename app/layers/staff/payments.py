"""Staff payment pages: the list with filters, the unmatched queue of every source with its
one assign form, EFT statement upload and deposit entry, confirming EFT rows, and the
SparkMeter credit push."""
from __future__ import annotations

from flask import abort, flash, request, url_for
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
from app.payments.credit import PaymentError
from app.payments.payfast import checkout_expiry_cutoff
from app.payments.unmatched import SOURCES as UNMATCHED_SOURCES, assign_unmatched, unmatched_payments
from app.payments.vendor_credit import push_payment, vendor_customer_code

PAGE_SIZE = 100


STATUS_FILTERS = (*PAYMENT_STATUSES, "expired")  # "expired": a derived state of "pending"


@bp.get("/payments")
def payments():
    provider = request.args.get("provider", "")
    status = request.args.get("status", "")
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
    return render("staff/payments/index.html", "payment_table", rows=rows, units=_unit_choices(),
                  unmatched=unmatched_payments(db.session), expired_before=cutoff,
                  providers=PROVIDERS, statuses=STATUS_FILTERS, utilities=UTILITIES,
                  provider=provider, status=status, report=None)


@bp.post("/payments/assign")
def assign():
    """One assign flow for every unmatched payment (M-PESA, EFT, Koios, ThunderCloud)."""
    source = request.form.get("source", "payment")
    row_id = request.form.get("payment_id", type=int) or 0
    unit_id = request.form.get("unit_id", type=int) or 0
    utility = request.form.get("utility", "electricity")
    if source not in UNMATCHED_SOURCES or not row_id or not unit_id or utility not in UTILITIES:
        flash("Choose a unit and a utility.", "error")
        return redirect(url_for("staff.payments", _anchor="unmatched")), 400
    unit = unit_or_404(db.session, current_user, unit_id, ("staff",))
    try:
        outcome = assign_unmatched(db.session, source, row_id, unit, utility, user_id=current_user.id)
    except PaymentError as error:
        db.session.rollback()
        flash(f"Not assigned: {error}", "error")
        return redirect(url_for("staff.payments", _anchor="unmatched")), 400
    flash(outcome.message, "success")
    if source == "payment":
        _report_push(db.session.get(Payment, row_id))
    return redirect(url_for("staff.payments", _anchor="unmatched"))


@bp.post("/payments/eft/statement")
def eft_statement():
    upload = request.files.get("statement")
    if upload is None or not upload.filename:
        flash("Choose a CSV bank statement to upload.", "error")
        return redirect(url_for("staff.payments", provider="eft")), 400
    try:
        report = eft.import_statement(db.session, upload.read().decode("utf-8-sig", "replace"),
                                      current_user.id)
    except eft.StatementError as error:
        db.session.rollback()
        flash(f"Statement not imported: {error}", "error")
        return redirect(url_for("staff.payments", provider="eft")), 400
    rows = db.session.scalars(select(Payment).where(Payment.provider == "eft")
                              .order_by(Payment.id.desc()).limit(PAGE_SIZE)).all()
    return render("staff/payments/index.html", rows=rows, report=report, units=_unit_choices(),
                  unmatched=unmatched_payments(db.session), expired_before=checkout_expiry_cutoff(),
                  providers=PROVIDERS, statuses=STATUS_FILTERS, utilities=UTILITIES,
                  provider="eft", status="")


@bp.post("/payments/eft/deposit")
def eft_deposit():
    form = request.form
    try:
        payment = eft.record_deposit(db.session, bank_ref=form.get("bank_ref", ""),
                                     amount=form.get("amount", ""), reference=form.get("reference", ""),
                                     paid_on=form.get("paid_on", ""), user_id=current_user.id)
    except (PaymentError, ValueError) as error:
        db.session.rollback()
        flash(f"Deposit not recorded: {error}", "error")
        return redirect(url_for("staff.payments", provider="eft")), 400
    flash(f"Deposit {payment.provider_ref} recorded ({payment.status_reason}); confirm it to credit.",
          "success")
    return redirect(url_for("staff.payments", provider="eft", status=payment.status))


@bp.post("/payments/eft/confirm")
def eft_confirm():
    ids = [int(value) for value in request.form.getlist("payment_id") if value.isdigit()]
    if not ids:
        flash("Tick the deposits to confirm.", "error")
        return redirect(url_for("staff.payments", provider="eft", status="to_confirm")), 400
    outcomes = eft.confirm_payments(db.session, ids, current_user.id)
    credited = [pid for pid, outcome in outcomes if outcome == "credited"]
    problems = [f"#{pid}: {outcome}" for pid, outcome in outcomes if outcome != "credited"]
    flash(f"{len(credited)} deposit(s) credited." + (f" Not credited: {'; '.join(problems)}" if problems else ""),
          "success" if not problems else "error")
    for pid in credited:
        _report_push(db.session.get(Payment, pid))
    return redirect(url_for("staff.payments", provider="eft"))


@bp.post("/payments/push")
def vendor_push():
    payment = _payment_from_form()
    if not vendor_customer_code(db.session, payment):
        flash("This payment's unit has no SparkMeter meter.", "error")
        return redirect(url_for("staff.payments")), 400
    result = push_payment(db.session, payment)
    db.session.commit()
    flash(f"SparkMeter: {result.message}", "success" if result.ok else "error")
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
        flash("SparkMeter: the credit push is queued; its result shows in the list.", "success")
    elif payment.vendor_push_status:
        flash(f"SparkMeter: {payment.vendor_push_result or payment.vendor_push_status}",
              "success" if payment.vendor_push_status == "pushed" else "error")
