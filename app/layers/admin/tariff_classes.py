"""Tariff classes of an estate (C5, issue 14 item 8): list, create, rename, and put units on a
class in bulk; and the unit page's slot that shows and changes one unit's class.

Staff reach every estate, agents the estates they manage (`ROLES`); the work is in
`app/billing/tariff_classes.py`.
"""
from __future__ import annotations

from flask import current_app, flash, request, url_for
from flask_babel import gettext, ngettext
from flask_login import current_user
from sqlalchemy import select

from app.auth.scope import estate_or_404, unit_or_404
from app.billing import schedule, tariff_classes
from app.extensions import db
from app.htmx import is_partial, redirect, render
from app.layers.admin import ROLES, bp
from app.models import Unit

SEARCH_MAX = 32


def _units(estate, args) -> tuple[list[Unit], dict]:
    """The estate's units for the assignment table, filtered by number and class."""
    query = (args.get("q") or "").strip()[:SEARCH_MAX]
    wanted = (args.get("class") or "").strip()[:12]
    units = db.session.scalars(select(Unit).where(Unit.estate_id == estate.id).order_by(Unit.number)).all()
    if query:
        units = [u for u in units if query.lower() in u.number.lower()]
    if wanted:
        default = tariff_classes.find_default(db.session, estate.id)
        default_id = default.id if default else None

        def key(unit):
            return "default" if unit.tariff_class_id in (None, default_id) else str(unit.tariff_class_id)

        units = [u for u in units if key(u) == ("default" if wanted == "default" or wanted == str(default_id)
                                                 else wanted)]
    return units, {"q": query, "class": wanted}


def _page(estate, errors: dict | None = None, form: dict | None = None, failed: str = ""):
    rows = tariff_classes.class_overview(db.session, estate)
    units, filters = _units(estate, request.args)
    return render("admin/tariff_classes.html", estate=estate, rows=rows, units=units, filters=filters,
                  classes=tariff_classes.estate_classes(db.session, estate.id),
                  describe=schedule.describe, errors=errors or {}, form=form or {}, failed=failed,
                  chosen={str(v) for v in (form or {}).get("unit_ids", [])})


@bp.get("/estates/<int:estate_id>/tariff-classes")
def tariff_classes_page(estate_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    return _page(estate)


@bp.post("/estates/<int:estate_id>/tariff-classes")
def tariff_classes_post(estate_id: int):
    """One form action per submit button: create, rename or assign."""
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    action = request.form.get("action", "")
    form = {"code": request.form.get("code", "")[:200], "name": request.form.get("name", "")[:300],
            "class_id": request.form.get("class_id", "")[:40],
            "unit_ids": request.form.getlist("unit_ids")}
    try:
        if action == "create":
            created = tariff_classes.create_class(db.session, estate, form["code"], form["name"],
                                                  user_id=current_user.id)
            flash(gettext("Class %(name)s added. Give it tariff versions on the staff tariffs page, then put units on it.",
                          name=created.name), "success")
        elif action == "rename":
            renamed = tariff_classes.rename_class(db.session, estate, form["class_id"], form["name"],
                                                  user_id=current_user.id)
            flash(gettext("Class renamed %(name)s.", name=renamed.name), "success")
        elif action == "assign":
            done = tariff_classes.assign_class(db.session, estate, form["unit_ids"], form["class_id"],
                                               user_id=current_user.id)
            moved = len(done.changed)
            flash(ngettext("%(num)s unit put on %(name)s.", "%(num)s units put on %(name)s.", moved, name=done.tariff_class.name)
                  + (" " + gettext("%(count)s already on it.", count=len(done.unchanged)) if done.unchanged else ""),
                  "success")
        else:
            return _page(estate, {"action": gettext("Choose what to do: add, rename or assign.")}, form, "action"), 400
    except tariff_classes.TariffClassError as error:
        db.session.rollback()
        return _page(estate, error.errors, form, action), 400
    return redirect(url_for("admin.tariff_classes_page", estate_id=estate.id))


# --- the unit page's slot -------------------------------------------------------------------


def _slot(unit, errors: dict | None = None, status: int = 200):
    response = render("admin/unit_tariff_class.html", block="slot", unit=unit, estate=unit.estate,
                      slot_errors=errors or {})
    return response, status


@bp.get("/units/<int:unit_id>/tariff-class")
def unit_tariff_class(unit_id: int):
    """The slot on a page of its own (where a form without htmx comes back to)."""
    unit = unit_or_404(db.session, current_user, unit_id, ROLES)
    return _slot(unit)


@bp.post("/units/<int:unit_id>/tariff-class")
def set_unit_tariff_class(unit_id: int):
    unit = unit_or_404(db.session, current_user, unit_id, ROLES)
    try:
        done = tariff_classes.assign_class(db.session, unit.estate, [unit.id], request.form.get("class_id", "")[:40],
                                           user_id=current_user.id)
    except tariff_classes.TariffClassError as error:
        db.session.rollback()
        return _slot(unit, error.errors, 400)
    db.session.refresh(unit)
    if is_partial():
        return _slot(unit)
    flash(gettext("Unit %(number)s now pays %(name)s prices.", number=unit.number, name=done.tariff_class.name), "success")
    endpoint = "admin.unit" if "admin.unit" in current_app.view_functions else "admin.unit_tariff_class"
    return redirect(url_for(endpoint, unit_id=unit.id))
