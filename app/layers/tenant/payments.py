"""Tenant payment pages: top-up through PayFast (P4) and the payment history (T3).

Family members topping up within their limits (F3) waits for the family limits; only
tenants top up here for now.
"""
from __future__ import annotations

from flask import current_app, flash, request, url_for
from flask_login import current_user
from sqlalchemy import func, select

from app.auth.scope import unit_ids_query, unit_or_404, visible_units
from app.extensions import db
from app.htmx import render
from app.layers.tenant import bp
from app.ledger.accounts import metered_utilities
from app.models.meter import UTILITIES
from app.models.payments import Payment
from app.payments import payfast
from app.payments.credit import PaymentError

ROLES = ("tenant",)


@bp.get("/payments")
def payments():
    query = select(Payment).where(Payment.status.in_(("credited", "pending", "failed", "cancelled")))
    if not current_user.is_staff:
        query = query.where(Payment.unit_id.in_(unit_ids_query(current_user, ROLES)))
    cutoff = payfast.checkout_expiry_cutoff()
    show_expired = request.args.get("expired") == "1"
    expired = db.session.scalar(select(func.count()).select_from(query.where(Payment.expired(cutoff)).subquery()))
    if not show_expired:
        query = query.where(Payment.not_expired(cutoff))
    rows = db.session.scalars(query.order_by(Payment.id.desc()).limit(100)).all()
    return render("tenant/payments/history.html", rows=rows, expired_before=cutoff,
                  expired_count=expired, show_expired=show_expired)


@bp.get("/topup")
def topup():
    cancelled = request.args.get("cancelled", "")
    if cancelled:
        # PayFast's cancel_url: the payer pressed cancel there; nothing was taken.
        payfast.cancel_checkout(db.session, cancelled, current_user)
        flash("Payment cancelled: nothing was taken. You can start again below.", "error")
    return _topup_form(None, {"unit_id": request.args.get("unit_id", type=int)})


@bp.post("/topup")
def start_topup():
    unit = unit_or_404(db.session, current_user, request.form.get("unit_id", type=int) or 0, ROLES)
    utility = request.form.get("utility", "")
    if utility not in UTILITIES:
        return _topup_form("Choose what to top up.", request.form), 400
    settings = payfast.PayfastSettings.from_config(current_app.config)
    public = current_app.config["PUBLIC_URL"].rstrip("/")
    try:
        payment, fields = payfast.start_checkout(
            db.session, settings, unit=unit, utility=utility, amount=request.form.get("amount", ""),
            user=current_user, return_url=public + url_for("tenant.topup_done"),
            cancel_url=public + url_for("tenant.topup", unit_id=unit.id) + "&cancelled={checkout_id}",
            notify_url=public + url_for("webhooks.payfast_itn"))
    except PaymentError as error:
        db.session.rollback()
        return _topup_form(str(error), request.form), 400
    db.session.commit()
    return render("tenant/payments/checkout.html", action=settings.process_url, fields=fields,
                  payment=payment, unit=unit)


@bp.get("/topup/done")
def topup_done():
    # PayFast sends the payer back here; the ITN may land a moment later, so show the history.
    flash("Thank you. Your top-up shows here as soon as PayFast confirms it (usually seconds).", "success")
    return payments()


def _topup_form(error: str | None, form):
    """The top-up form; the pocket list holds only pockets the chosen unit has a meter for."""
    units = visible_units(db.session, current_user, ROLES)
    chosen = next((u for u in units if str(u.id) == str(form.get("unit_id"))), units[0] if units else None)
    utilities = metered_utilities(db.session, chosen.id) if chosen else ()
    return render("tenant/payments/topup.html", "pocket_field", units=units, chosen=chosen,
                  utilities=utilities, error=error, form=form)
