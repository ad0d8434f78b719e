"""Meters administration (X6): an estate's meters list, a unit's meters, adding, editing, replacing.

Staff reach every estate, agents the estates they manage (`ROLES`). A meter id in a URL must
belong to the unit or estate in the same URL, else 404. The work is in app/estates/meters.py.
"""
from flask import abort, flash, request, url_for
from flask_babel import gettext
from flask_login import current_user

from app.auth.scope import estate_or_404, unit_or_404
from app.estates.meters import (AGES, STATES, MeterError, MeterFilters, add_meter, estate_meters, meter_of,
                                replace_meter, unit_meters, update_meter)
from app.extensions import db
from app.htmx import is_partial, redirect, render
from app.i18n.label_texts import N_
from app.labels import label
from app.layers.admin import ROLES, bp
from app.layers.export import requested_format, respond, titled
from app.models import Unit
from app.models.meter import METER_ROLES, PROTOCOLS, UTILITIES
from app.reports.export import Column

FORM_FIELDS = ("serial", "dev_eui", "utility", "role", "protocol", "interval_minutes", "register_digits",
               "bidirectional")
REPLACE_FIELDS = ("closing_register", "closing_time", "opening_register")


def _choices() -> dict:
    return {"utilities": UTILITIES, "roles": METER_ROLES, "protocols": PROTOCOLS, "ages": AGES, "states": STATES}


def _form(source=None, meter=None) -> dict:
    """The meter form's values: from a submitted form, else the meter's, else the defaults."""
    if source is not None:
        values = {name: source.get(name, "") for name in FORM_FIELDS}
        values["bidirectional"] = source.get("bidirectional") in ("1", "on", "true")
        return values
    if meter is not None:
        return {"serial": meter.serial, "dev_eui": (meter.dev_eui or "").upper(), "utility": meter.utility,
                "role": meter.role, "protocol": meter.protocol, "interval_minutes": meter.interval_minutes or "",
                "register_digits": meter.register_digits or "", "bidirectional": meter.bidirectional}
    return {"serial": "", "dev_eui": "", "utility": "electricity", "role": "unit", "protocol": "mqtt_direct",
            "interval_minutes": "30", "register_digits": "", "bidirectional": False}


# --- the estate's meters ---------------------------------------------------------------------

COLUMNS = [
    Column("Serial", lambda r: r.meter.serial),
    Column("Unit", lambda r: r.unit_number or "Estate (bulk)"),
    Column("Utility", lambda r: label("utility", r.meter.utility)),
    Column("Role", lambda r: label("meter_role", r.meter.role)),
    Column("Protocol", lambda r: label("protocol", r.meter.protocol)),
    Column("DevEUI", lambda r: (r.meter.dev_eui or "").upper()),
    Column(N_("Interval (min)"), lambda r: r.meter.interval_minutes or "", numeric=True),
    Column("Net-metered", lambda r: "yes" if r.meter.bidirectional else "no"),
    Column("Last reading", lambda r: r.meter.last_reading_at),
    Column("Last register", lambda r: r.meter.last_register, numeric=True),
    Column("State", lambda r: f"Replaced by {r.replaced_by}" if r.meter.detached_at else "In service"),
]


@bp.get("/estates/<int:estate_id>/meters")
def estate_meters_page(estate_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    return _estate_page(estate, _form(), {}, MeterFilters.from_args(request.args))


@bp.post("/estates/<int:estate_id>/meters")
def add_bulk_meter(estate_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    form = _form(request.form)
    values = {**form, "role": request.form.get("role") or "bulk"}
    try:
        saved = add_meter(db.session, estate, values, user_id=current_user.id)
    except MeterError as error:
        db.session.rollback()
        return _estate_page(estate, form, error.errors, MeterFilters()), 400
    flash(gettext("Meter %(serial)s added to %(estate)s.", serial=saved.meter.serial, estate=estate.name), "success")
    return redirect(url_for("admin.estate_meters_page", estate_id=estate.id))


def _estate_page(estate, form, errors, filters):
    rows = estate_meters(db.session, estate, filters)
    fmt = requested_format()
    if fmt:
        return respond(rows, COLUMNS, titled(N_("Meters %(estate)s"), estate=estate.name), fmt, timezone=estate.timezone,
                       subtitle=f"{len(rows)} meters")
    if form.get("role") == "unit":
        form = {**form, "role": "bulk"}
    return render("admin/meters.html", "meter_list", estate=estate, rows=rows, filters=filters, form=form,
                  errors=errors, **_choices())


@bp.get("/estates/<int:estate_id>/meters/<int:meter_id>/edit")
def edit_estate_meter(estate_id: int, meter_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    meter = meter_of(db.session, meter_id, estate=estate) or abort(404)
    return _edit_page(estate, None, meter, _form(meter=meter), {})


@bp.post("/estates/<int:estate_id>/meters/<int:meter_id>/edit")
def save_estate_meter(estate_id: int, meter_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    meter = meter_of(db.session, meter_id, estate=estate) or abort(404)
    return _save(estate, None, meter)


# --- a unit's meters (the component the unit page loads) -------------------------------------


@bp.get("/units/<int:unit_id>/meters")
def unit_meters_page(unit_id: int):
    unit = unit_or_404(db.session, current_user, unit_id, ROLES)
    return _unit_page(unit, _form(), {})


@bp.post("/units/<int:unit_id>/meters")
def add_unit_meter(unit_id: int):
    unit = unit_or_404(db.session, current_user, unit_id, ROLES)
    form = _form(request.form)
    try:
        saved = add_meter(db.session, unit, form, user_id=current_user.id)
    except MeterError as error:
        db.session.rollback()
        return _unit_page(unit, form, error.errors), 400
    if is_partial():  # the component swaps itself, saying what was added
        return _unit_page(db.session.get(Unit, unit.id), _form(), {}, added=saved.meter.serial)
    flash(gettext("Meter %(serial)s added to unit %(number)s.", serial=saved.meter.serial, number=unit.number), "success")
    return redirect(url_for("admin.unit_meters_page", unit_id=unit.id))


def _unit_page(unit, form, errors, added=None):
    return render("admin/unit_meters.html", "unit_meters", unit=unit, estate=unit.estate,
                  rows=unit_meters(db.session, unit), form=form, errors=errors, added=added, **_choices())


@bp.get("/units/<int:unit_id>/meters/<int:meter_id>/edit")
def edit_unit_meter(unit_id: int, meter_id: int):
    unit = unit_or_404(db.session, current_user, unit_id, ROLES)
    meter = meter_of(db.session, meter_id, unit=unit) or abort(404)
    return _edit_page(unit.estate, unit, meter, _form(meter=meter), {})


@bp.post("/units/<int:unit_id>/meters/<int:meter_id>/edit")
def save_unit_meter(unit_id: int, meter_id: int):
    unit = unit_or_404(db.session, current_user, unit_id, ROLES)
    meter = meter_of(db.session, meter_id, unit=unit) or abort(404)
    return _save(unit.estate, unit, meter)


def _save(estate, unit, meter):
    form = _form(request.form)
    try:
        saved = update_meter(db.session, meter, form, user_id=current_user.id)
    except MeterError as error:
        db.session.rollback()
        return _edit_page(estate, unit, meter, form, error.errors), 400
    flash(gettext("Meter %(serial)s saved.", serial=saved.meter.serial) if saved.changed else gettext("Nothing changed."), "success")
    if unit is not None:
        return redirect(url_for("admin.unit_meters_page", unit_id=unit.id))
    return redirect(url_for("admin.estate_meters_page", estate_id=estate.id))


def _edit_page(estate, unit, meter, form, errors):
    return render("admin/meter_edit.html", estate=estate, unit=unit, meter=meter, form=form, errors=errors,
                  **_choices())


# --- replacing a unit's meter ----------------------------------------------------------------


@bp.get("/units/<int:unit_id>/meters/<int:meter_id>/replace")
def replace_form(unit_id: int, meter_id: int):
    unit = unit_or_404(db.session, current_user, unit_id, ROLES)
    meter = meter_of(db.session, meter_id, unit=unit) or abort(404)
    form = {**_form(), "utility": meter.utility, "role": meter.role, "protocol": meter.protocol,
            "interval_minutes": meter.interval_minutes or "", "register_digits": meter.register_digits or "",
            "bidirectional": meter.bidirectional, "closing_register": "", "closing_time": "",
            "opening_register": "0"}
    return _replace_page(unit, meter, form, {})


@bp.post("/units/<int:unit_id>/meters/<int:meter_id>/replace")
def replace(unit_id: int, meter_id: int):
    unit = unit_or_404(db.session, current_user, unit_id, ROLES)
    meter = meter_of(db.session, meter_id, unit=unit) or abort(404)
    form = {**_form(request.form), "utility": meter.utility, "role": meter.role,
            **{name: request.form.get(name, "") for name in REPLACE_FIELDS}}
    try:
        done = replace_meter(db.session, meter, form["closing_register"], form["closing_time"], form,
                             form["opening_register"], user_id=current_user.id)
    except MeterError as error:
        db.session.rollback()
        return _replace_page(db.session.get(Unit, unit.id), meter, form, error.errors), 400
    flash(gettext("Meter %(old)s was replaced by %(new)s: its closing reading was billed and the new meter starts "
                  "from %(register)s.", old=done.old.serial, new=done.new.serial, register=form["opening_register"]),
          "success")
    return redirect(url_for("admin.unit_meters_page", unit_id=unit.id))


def _replace_page(unit, meter, form, errors):
    return render("admin/meter_replace.html", unit=unit, estate=unit.estate, meter=meter, form=form,
                  errors=errors, **_choices())
