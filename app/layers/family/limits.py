"""Family limits pages (F3, F4): spend limits per pocket, top-up caps per person, my alert settings."""
from flask import flash, request, url_for
from flask_babel import gettext
from flask_login import current_user

from app.auth.scope import wallet_actions, wallet_or_404
from app.extensions import db
from app.families import FamilyError
from app.families.access import active_grants, grant_of
from app.families.alerts import save_alert_settings
from app.families.limits import limit_rows, plain_amount, save_spend_limits, save_topup_caps
from app.htmx import redirect, render
from app.layers.family import bp
from app.models.budget_alerts import ALERT_CHANNELS


@bp.get("/units/<int:unit_id>/limits")
def limits(unit_id: int):
    unit = wallet_or_404(db.session, current_user, unit_id, "balance")
    return _page(unit, {}, {})


@bp.post("/units/<int:unit_id>/limits")
def save_limits(unit_id: int):
    unit = wallet_or_404(db.session, current_user, unit_id, "limits")
    try:
        save_spend_limits(db.session, unit, request.form, acting_user=current_user)
    except FamilyError as error:
        db.session.rollback()
        return _page(unit, request.form, error.errors), 400
    flash(gettext("Spend limits saved."), "success")
    return redirect(url_for("family.limits", unit_id=unit.id))


@bp.post("/units/<int:unit_id>/limits/caps/<int:grant_id>")
def save_caps(unit_id: int, grant_id: int):
    unit = wallet_or_404(db.session, current_user, unit_id, "limits")
    try:
        grant = save_topup_caps(db.session, unit, grant_id, request.form.get("daily", ""),
                                request.form.get("monthly", ""), acting_user=current_user)
    except FamilyError as error:
        db.session.rollback()
        return _page(unit, request.form, error.errors), 400
    flash(gettext("Top-up caps for %(name)s saved.", name=grant.user.display_name), "success")
    return redirect(url_for("family.limits", unit_id=unit.id))


@bp.post("/units/<int:unit_id>/alerts")
def save_alerts(unit_id: int):
    unit = wallet_or_404(db.session, current_user, unit_id, "alerts")
    mine = grant_of(db.session, current_user, unit.id)
    if mine is None:  # staff without a grant: alerts go to grant holders only
        return _page(unit, request.form, {"alerts": gettext("Alerts go to people with a grant on this wallet.")}), 400
    try:
        save_alert_settings(db.session, mine, enabled=request.form.get("alerts_enabled") == "1",
                            channels=request.form.getlist("channels"),
                            low_threshold=request.form.get("low_threshold", ""), acting_user=current_user)
    except FamilyError as error:
        db.session.rollback()
        return _page(unit, request.form, error.errors), 400
    flash(gettext("Alert settings saved."), "success")
    return redirect(url_for("family.limits", unit_id=unit.id))


def _page(unit, form, errors):
    return render("family/limits.html", plain=plain_amount, unit=unit, rows=limit_rows(db.session, unit), form=form, errors=errors,
                  grants=active_grants(db.session, unit.id), mine=grant_of(db.session, current_user, unit.id),
                  channels=ALERT_CHANNELS, actions=wallet_actions(db.session, current_user, unit.id))
