"""API key pages for staff (every estate) and agents (their estates): create once, list, revoke.

One set of views registered on both layer blueprints; the domain (app/integration/keys.py) decides
what each may do, and a key outside the user's reach is a 404 like any other object.
"""
from __future__ import annotations

from flask import Blueprint, abort, flash, request, url_for
from flask_babel import gettext, lazy_gettext as _l
from flask_login import current_user

from app.integration import keys
from app.auth.scope import estate_or_404, visible_estates
from app.extensions import db
from app.htmx import redirect, refuse, render
from app.models.api import API_PERMISSIONS
from app.layers.export import requested_format, respond
from app.reports.export import Column
from app.routing import INTEGER_MAX, whole_number

KEY_COLUMNS = [
    Column(_l("Name"), lambda k: k.name), Column(_l("Key starts"), lambda k: k.prefix or ""),
    Column(_l("Permissions"), lambda k: k.permissions), Column(_l("Estate"), lambda k: k.estate.code if k.estate else "all"),
    Column(_l("Created"), lambda k: k.created_at), Column(_l("Last used"), lambda k: k.last_used_at),
    Column(_l("Revoked"), lambda k: k.revoked_at),
]


def _page(layer: str, *, new=None, errors=None, form=None, status: int = 200):
    estates = visible_estates(db.session, current_user, ("agent",))
    response = render("api/keys.html", layer=layer, keys=keys.keys_for(db.session, current_user),
                      estates=estates, permissions=API_PERMISSIONS, labels=keys.PERMISSION_LABELS,
                      new=new, errors=errors or {}, form=form or {}, can_all=current_user.is_staff,
                      default_limit=keys.DEFAULT_RATE_LIMIT_PER_HOUR)
    if status != 200:
        return response, status
    return response


def _rate_limit(text: str) -> int | None:
    text = (text or "").strip()
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise keys.ApiKeyError(gettext("Enter the number of requests an hour, like 1000."), "rate_limit_per_hour")
    return int(text)


def register(bp: Blueprint, layer: str, list_rule: str) -> None:
    """Add the key list, create and revoke views to a layer blueprint."""

    def api_key_list():
        if fmt := requested_format():
            return respond(keys.keys_for(db.session, current_user), KEY_COLUMNS, "API keys", fmt)
        return _page(layer)

    def create_api_key():
        form = request.form
        estate = None
        try:
            if form.get("estate_id"):
                estate_id = whole_number(form["estate_id"], 1)
                if estate_id is None:
                    raise keys.ApiKeyError(gettext("Choose an estate from the list."), "estate_id")
                estate = estate_or_404(db.session, current_user, estate_id, ("agent",))
            new = keys.issue_key(db.session, form.get("name", ""), permissions=form.getlist("permissions"),
                                 estate=estate, issuer=current_user, mode=form.get("mode", "live"),
                                 rate_limit_per_hour=_rate_limit(form.get("rate_limit_per_hour", "")))
        except keys.ApiKeyError as error:
            db.session.rollback()
            return _page(layer, errors=error.errors, form=form, status=400)
        # Rendered, not redirected: the plain key must never sit in a session cookie or a URL.
        response = _page(layer, new=new)
        response.headers["Cache-Control"] = "no-store"
        return response

    def revoke_api_key(key_id: int):
        row = keys.key_for(db.session, current_user, key_id) if key_id <= INTEGER_MAX else None
        if row is None:
            abort(404)
        try:
            keys.revoke_key(db.session, row)
        except keys.ApiKeyError as error:
            db.session.rollback()
            return refuse(api_key_list, str(error))
        flash(gettext("Key “%(name)s” (%(prefix)s…) revoked: requests with it now answer 401.", name=row.name, prefix=row.prefix), "success")
        return redirect(url_for(f"{layer}.api_key_list"))

    bp.add_url_rule(list_rule, "api_key_list", api_key_list, methods=["GET"])
    bp.add_url_rule(list_rule, "create_api_key", create_api_key, methods=["POST"])
    bp.add_url_rule(f"{list_rule}/<int:key_id>/revoke", "revoke_api_key", revoke_api_key, methods=["POST"])
