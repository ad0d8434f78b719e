"""Family group top-up (F1): one amount spread over a group's wallets by a rule, previewed, then paid
through PayFast; the ITN credits every leg (app.payments.credit.credit_distribution)."""
from flask import current_app, flash, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app.auth.scope import wallet_group_or_404
from app.extensions import db
from app.families import FamilyError
from app.families.access import grant_of
from app.families.distribution import RULE_WORDS, preview, start_distribution_checkout
from app.families.limits import cap_room
from app.htmx import render
from app.layers.family import bp
from app.models.meter import UTILITIES
from app.payments import PaymentError, payfast

FIELDS = ("currency", "utility", "rule", "amount", "target", "remainder_unit_id")


def _form() -> dict[str, str]:
    source = request.form if request.method == "POST" else request.args
    return {k: v for k, v in source.items() if k in FIELDS or k.startswith("fixed_")}


@bp.get("/groups/<int:group_id>/distribute")
def distribute(group_id: int):
    group = wallet_group_or_404(db.session, current_user, group_id)
    cancelled = request.args.get("cancelled", "")
    if cancelled:
        payfast.cancel_checkout(db.session, cancelled, current_user)
        flash(_("Payment cancelled: nothing was taken. You can start again below."), "error")
    form = _form()
    return _page(group, form, preview(db.session, group, current_user, form), touched=bool(form.get("amount")))


@bp.post("/groups/<int:group_id>/distribute/preview")
def distribute_preview(group_id: int):
    group = wallet_group_or_404(db.session, current_user, group_id)
    form = _form()
    return _page(group, form, preview(db.session, group, current_user, form), touched=True)


@bp.post("/groups/<int:group_id>/distribute")
def start_distribution(group_id: int):
    group = wallet_group_or_404(db.session, current_user, group_id)
    form = _form()
    if form.get("utility", "electricity") not in UTILITIES:
        return _page(group, form, preview(db.session, group, current_user, {}), touched=True,
                     errors={"utility": _("Choose what to top up.")}), 400
    settings = payfast.PayfastSettings.from_config(current_app.config)
    public = current_app.config["PUBLIC_URL"].rstrip("/")
    try:
        payment, fields, shown = start_distribution_checkout(
            db.session, settings, group, current_user, form,
            return_url=public + url_for("family.topup_done"),
            cancel_url=public + url_for("family.distribute", group_id=group.id) + "?cancelled={checkout_id}",
            notify_url=public + url_for("webhooks.payfast_itn"))
    except (FamilyError, PaymentError) as error:
        db.session.rollback()
        errors = error.errors if isinstance(error, FamilyError) else {"amount": str(error)}
        return _page(group, form, preview(db.session, group, current_user, form), touched=True, errors=errors), 400
    return render("family/checkout.html", action=settings.process_url, fields=fields, payment=payment,
                  unit=None, shown=shown, group=group)


def _page(group, form, shown, *, touched: bool, errors: dict | None = None):
    errors = {**(shown.errors if touched else {}), **(errors or {})}
    rooms = {}
    for member in shown.members:
        room = cap_room(db.session, grant_of(db.session, current_user, member.unit.id), member.unit.estate,
                        expired_before=payfast.checkout_expiry_cutoff())
        if room.left is not None:
            rooms[member.unit.id] = room
    return render("family/distribute.html", "preview", group=group, form=form, p=shown, errors=errors,
                  rules=RULE_WORDS, rooms=rooms, touched=touched)
