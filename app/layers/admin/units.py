"""Unit administration: the estate's unit list (search, filters, pages, CSV/PDF), creating a
unit, and one unit's page (details, edit, occupancy with its history, account number, GPS).

The unit page hosts the other areas' components (meters, people, tariff class, notes), each
an `admin/_unit_slot_*.html` include that loads itself. The work is in app/estates/units.py.
"""
from decimal import Decimal

from flask import flash, request, url_for
from flask_babel import gettext, ngettext
from flask_login import current_user

from app.i18n.formatting import translated_label
from app.auth.scope import estate_or_404, unit_or_404
from app.estates import account_numbers
from app.estates.queries import UnitFilters, unit_list
from app.estates.units import FIELDS, UnitError, change_occupancy, create_unit, occupancy_history, update_unit
from app.extensions import db
from app.htmx import redirect, render
from app.i18n.label_texts import N_
from app.labels import label
from app.layers.admin import ROLES, bp
from app.layers.export import requested_format, respond, titled
from app.models.estate import OCCUPANCY_STATUSES
from app.models.meter import UTILITIES
from app.reports.export import Column
from app.routing import whole_number

COLUMNS = (
    Column("Unit", lambda r: r.unit.number),
    Column("Account number", lambda r: r.unit.account_number or ""),
    Column("Status", lambda r: label("occupancy", r.unit.occupancy_status)),
    Column("Tenant", lambda r: r.tenant_names),
    Column("Address", lambda r: r.unit.address or ""),
    Column("Latitude", lambda r: r.unit.latitude, numeric=True),
    Column("Longitude", lambda r: r.unit.longitude, numeric=True),
    Column(N_("Floor area (m²)"), lambda r: None if r.unit.floor_area_m2 is None
           else r.unit.floor_area_m2.quantize(Decimal("0.01")), numeric=True),
    Column("Meters", lambda r: ", ".join(label("utility", u) for u in r.utilities)),
)


@bp.get("/estates/<int:estate_id>/units")
def units(estate_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    filters = UnitFilters.read(request.args)
    fmt = requested_format()
    if fmt:
        listing = unit_list(db.session, estate, filters, page=None, page_size=None)
        return respond(listing.rows, COLUMNS, titled(N_("Units of %(estate)s"), estate=estate.name), fmt, timezone=estate.timezone,
                       subtitle=_filters_said(filters))
    listing = unit_list(db.session, estate, filters, page=_page_number(request.args.get("page")))
    return render("admin/units.html", "unit_table", estate=estate, listing=listing, filters=filters,
                  statuses=OCCUPANCY_STATUSES, utilities=UTILITIES)


@bp.post("/estates/<int:estate_id>/units/account-numbers")
def give_account_numbers(estate_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    try:
        given = account_numbers.give_missing_account_numbers(db.session, estate, user_id=current_user.id)
    except account_numbers.AccountNumberError as error:
        db.session.rollback()
        flash(gettext("No account numbers were given: %(reason)s", reason=error), "error")
        return redirect(url_for("admin.units", estate_id=estate.id))
    flash(ngettext("%(num)s unit got an account number.", "%(num)s units got an account number.", given) if given
          else gettext("Every unit already has an account number."), "success")
    return redirect(url_for("admin.units", estate_id=estate.id))


@bp.get("/estates/<int:estate_id>/units/new")
def new_unit(estate_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    return _new_page(estate, {"occupancy_status": "vacant"}, {})


@bp.post("/estates/<int:estate_id>/units/new")
def add_unit(estate_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    form = _form_values(("occupancy_status",))
    try:
        made = create_unit(db.session, estate, form, user_id=current_user.id)
    except UnitError as error:
        db.session.rollback()
        return _new_page(estate, form, error.errors), 400
    flash(gettext("Unit %(number)s added, account number %(account)s.", number=made.unit.number,
                  account=made.unit.account_number), "success")
    return redirect(url_for("admin.unit", unit_id=made.unit.id))


@bp.get("/units/<int:unit_id>")
def unit(unit_id: int):
    found = unit_or_404(db.session, current_user, unit_id, ROLES)
    return _unit_page(found, _stored_values(found), {})


@bp.post("/units/<int:unit_id>")
def edit_unit(unit_id: int):
    found = unit_or_404(db.session, current_user, unit_id, ROLES)
    form = _form_values(("account_number",))
    try:
        result = update_unit(db.session, found, form, user_id=current_user.id)
    except UnitError as error:
        db.session.rollback()
        return _unit_page(found, form, error.errors), 400
    flash(gettext("Unit saved.") if result.changed else gettext("Nothing changed."), "success")
    return redirect(url_for("admin.unit", unit_id=found.id))


@bp.post("/units/<int:unit_id>/occupancy")
def set_unit_occupancy(unit_id: int):
    found = unit_or_404(db.session, current_user, unit_id, ROLES)
    status = (request.form.get("status") or "")[:32]
    try:
        changed = change_occupancy(db.session, found, status, user_id=current_user.id)
    except UnitError as error:
        db.session.rollback()
        return _unit_page(found, _stored_values(found), {}, occupancy_errors=error.errors), 400
    flash(gettext("Unit %(number)s is now %(status)s.", number=found.number,
                  status=translated_label(status, "occupancy").lower()) if changed
          else gettext("Unit %(number)s was already %(status)s.", number=found.number,
                       status=translated_label(status, "occupancy").lower()), "success")
    return redirect(url_for("admin.unit", unit_id=found.id))


# --- helpers of these views -----------------------------------------------------------------

def _page_number(raw: str | None) -> int:
    """A page number from the query string; anything unreadable is the first page."""
    return whole_number(raw, 1) or 1


def _filters_said(filters: UnitFilters) -> str:
    said = []
    if filters.q:
        said.append(f"matching “{filters.q}”")
    if filters.status:
        said.append(label("occupancy", filters.status).lower())
    if filters.meters:
        said.append(f"{filters.meters} meters")
    if filters.utility:
        said.append(f"with a {label('utility', filters.utility).lower()} meter")
    return ", ".join(said)


def _form_values(extra: tuple[str, ...]) -> dict[str, str]:
    """The unit form's fields as sent; an extra field only when the form has it."""
    values = {name: request.form.get(name, "") for name in FIELDS}
    values.update({name: request.form[name] for name in extra if name in request.form})
    return values


def _stored_values(unit) -> dict[str, str]:
    """The unit's values as its edit form shows them."""
    def text(value):
        return "" if value is None else format(value.normalize(), "f")
    return {"number": unit.number, "floor_area_m2": text(unit.floor_area_m2), "address": unit.address or "",
            "latitude": text(unit.latitude), "longitude": text(unit.longitude),
            "account_number": unit.account_number or ""}


def _new_page(estate, form, errors):
    return render("admin/unit_new.html", estate=estate, form=form, errors=errors, statuses=OCCUPANCY_STATUSES)


def _unit_page(found, form, errors, *, occupancy_errors=None):
    return render("admin/unit.html", unit=found, estate=found.estate, form=form, errors=errors,
                  occupancy_errors=occupancy_errors or {}, history=occupancy_history(db.session, found),
                  statuses=OCCUPANCY_STATUSES)
