"""Family top-up (P4, F3): pay into a shared wallet through PayFast within one's top-up caps,
and the payments the person made into shared wallets."""
from flask import abort, current_app, flash, request, url_for
from flask_babel import gettext
from flask_login import current_user
from sqlalchemy import select

from app.auth.scope import visible_units, wallet_actions, wallet_or_404
from app.extensions import db
from app.families import FamilyError
from app.families.access import grant_of
from app.families.limits import cap_room, start_family_checkout
from app.htmx import render
from app.layers.family import bp
from app.ledger.accounts import metered_utilities
from app.models.meter import UTILITIES
from app.models.payments import Payment
from app.payments import PaymentError, payfast


def _payable_units():
    return [u for u in visible_units(db.session, current_user, ("family",))
            if "topup" in wallet_actions(db.session, current_user, u.id)]


@bp.get("/topup")
def topup():
    cancelled = request.args.get("cancelled", "")
    if cancelled:
        payfast.cancel_checkout(db.session, cancelled, current_user)
        flash(gettext("Payment cancelled: nothing was taken. You can start again below."), "error")
    unit_id = request.args.get("unit_id", type=int)
    if unit_id:
        wallet_or_404(db.session, current_user, unit_id, "topup")
    return _form({}, {"unit_id": unit_id})


@bp.post("/topup")
def start_topup():
    unit = wallet_or_404(db.session, current_user, request.form.get("unit_id", type=int) or 0, "topup")
    utility = request.form.get("utility", "")
    if utility not in UTILITIES:
        return _form({"utility": gettext("Choose what to top up.")}, request.form), 400
    settings = payfast.PayfastSettings.from_config(current_app.config)
    public = current_app.config["PUBLIC_URL"].rstrip("/")
    try:
        payment, fields = start_family_checkout(
            db.session, settings, unit=unit, utility=utility, amount=request.form.get("amount", ""),
            user=current_user, return_url=public + url_for("family.topup_done"),
            cancel_url=public + url_for("family.topup", unit_id=unit.id) + "&cancelled={checkout_id}",
            notify_url=public + url_for("webhooks.payfast_itn"))
    except FamilyError as error:
        db.session.rollback()
        return _form(error.errors, request.form), 400
    except PaymentError as error:
        db.session.rollback()
        return _form({"amount": str(error)}, request.form), 400
    return render("family/checkout.html", action=settings.process_url, fields=fields, payment=payment, unit=unit)


@bp.get("/topup/done")
def topup_done():
    flash(gettext("Thank you. The top-up shows here as soon as PayFast confirms it (usually seconds)."), "success")
    return payments()


@bp.get("/payments")
def payments():
    units = {u.id: u for u in visible_units(db.session, current_user, ("family",))}
    from app.models.families import WalletDistribution  # issue 17: group top-ups carry no unit

    groups = select(WalletDistribution.payment_id).where(WalletDistribution.created_by_user_id == current_user.id)
    rows = db.session.scalars(select(Payment).where(
        Payment.created_by_user_id == current_user.id,
        Payment.unit_id.in_(list(units) or [0]) | Payment.id.in_(groups))
        .order_by(Payment.created_at.desc(), Payment.id.desc()).limit(200)).all()
    shares = {d.payment_id: d for d in db.session.scalars(select(WalletDistribution).where(
        WalletDistribution.payment_id.in_([p.id for p in rows if p.unit_id is None] or [0])))}
    return render("family/payments.html", rows=rows, cutoff=payfast.checkout_expiry_cutoff(), shares=shares)


def _form(errors, form):
    units = _payable_units()
    chosen = next((u for u in units if str(u.id) == str(form.get("unit_id"))), units[0] if units else None)
    if chosen is None and form.get("unit_id"):
        abort(404)
    utilities = metered_utilities(db.session, chosen.id) if chosen else ()
    room = None
    if chosen is not None:
        room = cap_room(db.session, grant_of(db.session, current_user, chosen.id), chosen.estate,
                        expired_before=payfast.checkout_expiry_cutoff())
    return render("family/topup.html", "pocket_field", units=units, chosen=chosen, utilities=utilities,
                  errors=errors, form=form, room=room)
