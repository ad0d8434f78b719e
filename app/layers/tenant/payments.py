"""Tenant payment pages: top-up through PayFast (P4), My payments and each payment's receipt (T3, P6).

Family members topping up within their limits (F3) waits for the family limits; only
tenants top up here for now.
"""
from __future__ import annotations

from io import BytesIO

from flask import abort, current_app, flash, request, send_file, url_for
from flask_babel import gettext
from flask_login import current_user

from app.auth.scope import unit_or_404, visible_units
from app.extensions import db
from app.htmx import render
from app.layers.export import requested_format
from app.layers.tenant import bp
from app.ledger.accounts import metered_utilities
from app.models.meter import UTILITIES
from app.payments import payfast
from app.payments import PaymentError
from app.reports.pdf import render_receipt_pdf
from app.reports.receipts import expired_checkouts, find_receipt, my_payments

ROLES = ("tenant",)


@bp.get("/payments")
def payments():
    cutoff = payfast.checkout_expiry_cutoff()
    show_expired = request.args.get("expired") == "1"
    return render("tenant/payments/history.html",
                  rows=my_payments(db.session, current_user, expired_before=cutoff, show_expired=show_expired),
                  expired_count=expired_checkouts(db.session, current_user, cutoff), show_expired=show_expired)


@bp.get("/payments/<receipt_number>")
def receipt(receipt_number: str):
    found = find_receipt(db.session, current_user, receipt_number)
    if found is None:
        abort(404)
    if requested_format() == "pdf":
        return send_file(BytesIO(render_receipt_pdf(found)), mimetype="application/pdf",
                         download_name=f"receipt-{receipt_number}.pdf", max_age=0)
    if requested_format() is not None:
        abort(400, gettext("a receipt downloads as PDF only (format=pdf)"))
    return render("tenant/payments/receipt.html", r=found)


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
