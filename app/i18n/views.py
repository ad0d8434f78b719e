"""The language switch every page offers in its footer (signed in or not)."""
from flask import Blueprint, abort, request, url_for
from flask_login import current_user

from app.auth.redirects import safe_next
from app.extensions import db
from app.htmx import redirect
from app.i18n import LanguageError, choose_language

bp = Blueprint("i18n", __name__)


@bp.post("/language")
def switch_language():
    user = current_user._get_current_object() if current_user.is_authenticated else None
    try:
        choose_language(db.session, user, (request.form.get("language") or "")[:16])
    except LanguageError as error:
        db.session.rollback()
        abort(400, str(error))
    db.session.commit()
    return redirect(safe_next(request.form.get("next")) or url_for("auth.home"))
