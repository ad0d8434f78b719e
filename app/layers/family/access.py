"""Family access pages (F2): who may do what on a wallet; managers and staff grant and revoke."""
from flask import flash, request, url_for
from flask_babel import gettext
from flask_login import current_user

from app.auth.scope import wallet_actions, wallet_or_404
from app.extensions import db
from app.families import FamilyError
from app.families.access import LEVEL_WORDS, active_grants, grant_access, revoke_access
from app.htmx import redirect, render
from app.layers.family import bp


@bp.get("/units/<int:unit_id>/access")
def access(unit_id: int):
    unit = wallet_or_404(db.session, current_user, unit_id, "balance")
    return _page(unit, {}, {})


@bp.post("/units/<int:unit_id>/access")
def grant(unit_id: int):
    unit = wallet_or_404(db.session, current_user, unit_id, "grant")
    form = {k: request.form.get(k, "") for k in ("email", "phone", "name", "level")}
    try:
        done = grant_access(db.session, unit, email=form["email"], phone=form["phone"], name=form["name"],
                            level=form["level"], acting_user=current_user)
    except FamilyError as error:
        db.session.rollback()
        return _page(unit, form, error.errors), 400
    message = gettext("%(name)s may now: %(level)s.", name=done.grant.user.display_name,
                      level=gettext(LEVEL_WORDS[done.grant.level]).lower())
    if done.invited:
        message += " " + gettext("An invite was emailed to them.")
    flash(message, "success")
    return redirect(url_for("family.access", unit_id=unit.id))


@bp.post("/units/<int:unit_id>/access/<int:grant_id>/revoke")
def revoke(unit_id: int, grant_id: int):
    unit = wallet_or_404(db.session, current_user, unit_id, "revoke")
    try:
        gone = revoke_access(db.session, unit, grant_id, acting_user=current_user)
    except FamilyError as error:
        db.session.rollback()
        return _page(unit, {}, error.errors), 400
    flash(gettext("%(name)s no longer has access to this wallet.", name=gone.user.display_name), "success")
    return redirect(url_for("family.access", unit_id=unit.id))


def _page(unit, form, errors):
    return render("family/access.html", unit=unit, grants=active_grants(db.session, unit.id), form=form,
                  errors=errors, levels=LEVEL_WORDS, actions=wallet_actions(db.session, current_user, unit.id))
