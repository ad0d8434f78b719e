"""Staff payment pages: the list with filters, the unmatched queue's assign form, EFT
statement upload and deposit entry, confirming EFT rows, and the SparkMeter credit push."""
from __future__ import annotations

from flask import abort, flash, request, url_for
from flask_login import current_user
from sqlalchemy import select

from app.extensions import db
from app.htmx import redirect, render
from app.layers.staff import bp
from app.models import Estate, Unit
from app.models.meter import UTILITIES
from app.models.payments import PAYMENT_STATUSES, PROVIDERS, Payment
from app.payments import eft
from app.payments.credit import PaymentError
from app.payments.mpesa_sms import assign_payment
from app.payments.vendor_credit import push_payment, vendor_customer_code

PAGE_SIZE = 100


@bp.get("/payments")
def payments():
    provider = request.args.get("provider", "")
    status = request.args.get("status", "")
    query = select(Payment).order_by(Payment.id.desc()).limit(PAGE_SIZE)
    if provider in PROVIDERS:
        query = query.where(Payment.provider == provider)
    if status in PAYMENT_STATUSES:
        query = query.where(Payment.status == status)
    rows = db.session.scalars(query).all()
    units = db.session.execute(select(Unit.id, Unit.number, Estate.name).join(Estate)
                               .order_by(Estate.name, Unit.number)).all()
    return render("staff/payments/index.html", "payment_table", rows=rows, units=units,
                  providers=PROVIDERS, statuses=PAYMENT_STATUSES, utilities=UTILITIES,
                  provider=provider, status=status, report=None)


@bp.post("/payments/assign")
def assign():
    payment = _payment_from_form()
    unit = db.session.get(Unit, request.form.get("unit_id", type=int) or 0)
    utility = request.form.get("utility", "electricity")
    if unit is None or utility not in UTILITIES:
        flash("Choose a unit and a utility.", "error")
        return redirect(url_for("staff.payments", status="unmatched")), 400
    try:
        created = assign_payment(db.session, payment, unit, utility, current_user.id)
    except PaymentError as error:
        db.session.rollback()
        flash(f"Not assigned: {error}", "error")
        return redirect(url_for("staff.payments", status="unmatched")), 400
    flash(f"Payment {payment.provider_ref} credited to unit {unit.number}." if created
          else f"Payment {payment.provider_ref} was already credited; nothing changed.", "success")
    _report_push(payment)
    return redirect(url_for("staff.payments", status="unmatched"))


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
    return render("staff/payments/index.html", rows=rows, report=report, units=[],
                  providers=PROVIDERS, statuses=PAYMENT_STATUSES, utilities=UTILITIES,
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
