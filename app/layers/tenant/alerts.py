"""Tenant budget alert settings (T4): thresholds per pocket, frequency and channels."""
from flask import flash, request, url_for
from flask_login import current_user

from app.auth.scope import unit_or_404
from app.notify.budget_alerts import AlertSettingsError, recent_alerts_sent, save_settings, settings_for, unit_pockets
from app.extensions import db
from app.htmx import redirect, render
from app.layers.tenant import bp
from app.layers.tenant.views import ROLES
from app.models.budget_alerts import ALERT_CHANNELS, ALERT_FREQUENCIES


@bp.get("/units/<int:unit_id>/alerts")
def alerts(unit_id: int):
    unit = unit_or_404(db.session, current_user, unit_id, ROLES)
    setting = settings_for(db.session, current_user, unit)
    form = {"thresholds": dict(setting.thresholds) if setting else {},
            "frequency": setting.frequency if setting else "daily",
            "channels": list(setting.channels) if setting else ["in_app", "email"],
            "high_usage": setting.high_usage if setting else True}
    return _page(unit, form, {}, setting)


@bp.post("/units/<int:unit_id>/alerts")
def save_alerts(unit_id: int):
    unit = unit_or_404(db.session, current_user, unit_id, ROLES)
    pockets = unit_pockets(db.session, unit)
    form = {"thresholds": {u: request.form.get(f"threshold_{u}", "") for u in pockets},
            "frequency": request.form.get("frequency", ""),
            "channels": request.form.getlist("channels"),
            "high_usage": request.form.get("high_usage") == "1"}
    try:
        save_settings(db.session, current_user, unit, thresholds=form["thresholds"], frequency=form["frequency"],
                      channels=form["channels"], high_usage=form["high_usage"])
    except AlertSettingsError as error:
        db.session.rollback()
        return _page(unit, form, error.errors, settings_for(db.session, current_user, unit)), 400
    flash("Alert settings saved.", "success")
    return redirect(url_for("tenant.alerts", unit_id=unit.id))


def _page(unit, form, errors, setting):
    sent = recent_alerts_sent(db.session, setting) if setting is not None else []
    return render("tenant/alerts.html", unit=unit, pockets=unit_pockets(db.session, unit), form=form,
                  errors=errors, frequencies=ALERT_FREQUENCIES, channels=ALERT_CHANNELS, sent=sent)
