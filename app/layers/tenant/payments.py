"""Tenant payment pages: top-up through PayFast (P4) and the payment history (T3).

Family members topping up within their limits (F3) waits for the family limits; only
tenants top up here for now.
"""
from __future__ import annotations

from flask import current_app, flash, request, url_for
from flask_login import current_user
from sqlalchemy import select

from app.auth.scope import unit_ids_query, unit_or_404, visible_units
from app.extensions import db
from app.htmx import render
from app.layers.tenant import bp
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
    rows = db.session.scalars(query.order_by(Payment.id.desc()).limit(100)).all()
    return render("tenant/payments/history.html", rows=rows)


@bp.get("/topup")
def topup():
    units = visible_units(db.session, current_user, ROLES)
    return render("tenant/payments/topup.html", units=units, utilities=UTILITIES, error=None,
                  form={"unit_id": request.args.get("unit_id", type=int)})


@bp.post("/topup")
def start_topup():
    unit = unit_or_404(db.session, current_user, request.form.get("unit_id", type=int) or 0, ROLES)
    utility = request.form.get("utility", "")
    if utility not in UTILITIES:
        return _form_again("Choose what to top up."), 400
    settings = payfast.PayfastSettings.from_config(current_app.config)
    public = current_app.config["PUBLIC_URL"].rstrip("/")
    try:
        payment, fields = payfast.start_checkout(
            db.session, settings, unit=unit, utility=utility, amount=request.form.get("amount", ""),
            user=current_user, return_url=public + url_for("tenant.topup_done"),
            cancel_url=public + url_for("tenant.topup", unit_id=unit.id),
            notify_url=public + url_for("webhooks.payfast_itn"))
    except PaymentError as error:
        db.session.rollback()
        return _form_again(str(error)), 400
    db.session.commit()
    return render("tenant/payments/checkout.html", action=settings.process_url, fields=fields,
                  payment=payment, unit=unit)


@bp.get("/topup/done")
def topup_done():
    # PayFast sends the payer back here; the ITN may land a moment later, so show the history.
    flash("Thank you. Your top-up shows here as soon as PayFast confirms it (usually seconds).", "success")
    return payments()


def _form_again(error: str):
    units = visible_units(db.session, current_user, ROLES)
    return render("tenant/payments/topup.html", units=units, utilities=UTILITIES, error=error,
                  form=request.form)
