"""Estate pages of the administration: a new estate, and an estate's profile and settings.

Staff create and edit; an agent may read their estate's settings (no form), and a POST from
an agent is a 404 like every staff-only action.
"""
from datetime import date

from flask import flash, request, url_for
from flask_babel import gettext, ngettext
from flask_login import current_user

from app.auth.scope import estate_or_404
from app.estates import choices
from app.estates.profile import (EstateError, create_estate, form_values, locked_fields, setting_rows,
                                 update_estate)
from app.estates.settings_catalog import grouped
from app.extensions import db
from app.htmx import redirect, render
from app.i18n.formatting import local_date
from app.layers.admin import ROLES, bp, staff_only
from app.models.estate import LIVE_FEATURES, WALLET_DENOMINATIONS


@bp.get("/estates/new")
def new_estate():
    staff_only()
    return _form(None, form_values(db.session, None), {})


@bp.post("/estates/new")
def create_estate_view():
    staff_only()
    values = request.form.to_dict()
    try:
        saved = create_estate(db.session, values, user_id=current_user.id)
    except EstateError as error:
        db.session.rollback()
        return _form(None, values, error.errors), 400
    flash(gettext("%(estate)s (%(code)s) is created.", estate=saved.estate.name, code=saved.estate.code), "success")
    return redirect(url_for("admin.estate", estate_id=saved.estate.id))


@bp.get("/estates/<int:estate_id>/settings")
def estate_settings(estate_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    if not current_user.is_staff:
        return render("admin/estate_settings_view.html", estate=estate, rows=setting_rows(db.session, estate),
                      features=LIVE_FEATURES, country_name=choices.country_name(estate.country),
                      currency_name=choices.currency_name(estate.currency))
    return _form(estate, form_values(db.session, estate), {})


@bp.post("/estates/<int:estate_id>/settings")
def save_estate_settings(estate_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    staff_only()
    values = request.form.to_dict()
    try:
        saved = update_estate(db.session, estate, values, user_id=current_user.id)
    except EstateError as error:
        db.session.rollback()
        return _form(estate, values, error.errors), 400
    changed = len(saved.changes)
    flash(ngettext("%(estate)s: %(num)s change saved.", "%(estate)s: %(num)s changes saved.", changed, estate=estate.name)
          if changed else gettext("%(estate)s: nothing changed.", estate=estate.name), "success")
    return redirect(url_for("admin.estate_settings", estate_id=estate.id))


def _form(estate, values, errors):
    """The estate form (new or edit) with its values and the messages beside each field."""
    rows = {row.spec.key: row for row in setting_rows(db.session, estate)}
    country = values.get("country") or (estate.country if estate else "ZA")
    return render(
        "admin/estate_form.html", estate=estate, form=values, errors=errors,
        locked=locked_fields(db.session, estate), groups=grouped(), rows=rows,
        countries=choices.countries(), currencies=choices.currencies(),
        timezone_groups=choices.timezones_for(str(country).upper()[:2]),
        denominations=WALLET_DENOMINATIONS, features=LIVE_FEATURES,
        months=[local_date(date(2000, month, 1), "%B") for month in range(1, 13)])
