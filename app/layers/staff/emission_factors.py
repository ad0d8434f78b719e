"""Staff emission factors page (U5 carbon): every country's factors per utility with their dates;
add one, or change one's value and source (audited)."""
from __future__ import annotations

from flask import abort, flash, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app.analytics.carbon import CARBON_UTILITIES, FactorError, factors_of, save_factor
from app.extensions import db
from app.htmx import redirect, render
from app.labels import label
from app.layers.staff import bp
from app.models.utility import EmissionFactor


def _page(errors=None, form=None, editing: int | None = None, status: int = 200):
    return render("staff/emission_factors.html", factors=factors_of(db.session), utilities=CARBON_UTILITIES,
                  errors=errors or {}, form=form or {}, editing=editing), status


@bp.get("/emission-factors")
def emission_factors():
    return _page()


@bp.post("/emission-factors")
def create_emission_factor():
    try:
        factor = save_factor(db.session, request.form, user_id=current_user.id)
    except FactorError as error:
        db.session.rollback()
        return _page(error.errors, request.form, status=400)
    flash(_("Factor for %(utility)s in %(country)s from %(day)s saved.", utility=label("utility", factor.utility).lower(),
            country=factor.country, day=factor.effective_from.strftime("%d %b %Y")), "success")
    return redirect(url_for("staff.emission_factors"))


@bp.post("/emission-factors/<int:factor_id>")
def update_emission_factor(factor_id: int):
    factor = db.session.get(EmissionFactor, factor_id) or abort(404)
    try:
        save_factor(db.session, request.form, factor=factor, user_id=current_user.id)
    except FactorError as error:
        db.session.rollback()
        return _page(error.errors, request.form, editing=factor_id, status=400)
    flash(_("Factor changed."), "success")
    return redirect(url_for("staff.emission_factors"))
