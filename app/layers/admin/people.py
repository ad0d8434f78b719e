"""People and access pages of an estate's administration (X6).

The estate's people (search, role filter, CSV/PDF, register a person), one person (edit,
their grants here with revoke, invite, login status; staff deactivate or reactivate the
login), and a unit's people component (tenants, owners, grants; add and end them) that the
unit page loads. The work is in app/estates/people.py and app/estates/access.py.
"""
from __future__ import annotations

from datetime import date

from flask import abort, current_app, flash, request, url_for
from flask_babel import gettext
from flask_login import current_user
from sqlalchemy import select

from app.i18n.formatting import translated_label
from app.auth.scope import estate_or_404, unit_or_404
from app.estates import access
from app.estates import people as people_domain
from app.estates.access import AccessError
from app.estates.people import PersonError, estate_people, login_status, person_of_estate
from app.extensions import db
from app.htmx import redirect, render
from app.i18n.label_texts import N_
from app.labels import label
from app.layers.admin import ROLES, bp, staff_only
from app.layers.export import requested_format, respond, titled
from app.models import Estate, Person, RoleGrant, Tenancy, Unit, UnitOwnership, User
from app.models.people import ESTATE_ROLES, ROLES as ALL_ROLES, UNIT_ROLES
from app.reports.export import Column
from app.routing import whole_number

PERSON_FIELDS = ("full_name", "email", "phone", "language")
ROLE_FILTERS = tuple(r for r in ALL_ROLES if r != "staff") + ("none",)
FIELD_MAX = 400  # longer form values are cut before validation says what is wrong

PEOPLE_COLUMNS = [
    Column("Name", lambda r: r.person.full_name),
    Column("Email", lambda r: r.person.email or ""),
    Column("Phone", lambda r: r.person.phone or ""),
    Column("Roles here", lambda r: ", ".join(label("role", role) for role in r.roles)),
    Column("Login", lambda r: label("login_status", r.login)),
    Column(N_("Registered"), lambda r: r.person.created_at),
]


def _values() -> dict[str, str]:
    return {name: (request.form.get(name) or "")[:FIELD_MAX] for name in PERSON_FIELDS}


def _form_id(name: str) -> int:
    """An id from the form; anything that is not one is 0 (the lookup then finds nothing)."""
    return whole_number(request.form.get(name), 1) or 0


def _form_date(name: str) -> date | None:
    text = (request.form.get(name) or "").strip()
    try:
        value = date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        return None
    return value if value and 1900 <= value.year <= 2200 else None


def _person_or_404(estate: Estate, person_id: int) -> Person:
    person = person_of_estate(db.session, estate, person_id)
    if person is None:
        abort(404)
    return person


# --- the estate's people --------------------------------------------------------------------

def _people_page(estate: Estate, *, form=None, errors=None, existing=None, status: int = 200):
    search = (request.args.get("q") or "")[:100]
    role = request.args.get("role") or ""
    if role not in ROLE_FILTERS:
        role = ""
    rows = estate_people(db.session, estate, search=search, role=role)
    fmt = requested_format()
    if fmt:
        return respond(rows, PEOPLE_COLUMNS, titled(N_("People %(estate)s"), estate=estate.code), fmt, timezone=estate.timezone,
                       subtitle=estate.name)
    response = render("admin/people.html", "people_table", estate=estate, rows=rows, search=search,
                      role=role, role_filters=ROLE_FILTERS, form=form or {}, errors=errors or {},
                      existing=existing)
    response.status_code = status
    return response


@bp.get("/estates/<int:estate_id>/people")
def people(estate_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    return _people_page(estate)


@bp.post("/estates/<int:estate_id>/people")
def create_person(estate_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    values = _values()
    try:
        person = people_domain.create_person(db.session, estate, values, user_id=current_user.id)
    except PersonError as error:
        db.session.rollback()
        return _people_page(estate, form=values, errors=error.errors, existing=error.existing, status=400)
    flash(gettext("%(name)s is registered to %(estate)s.", name=person.full_name, estate=estate.name), "success")
    return redirect(url_for("admin.person", estate_id=estate.id, person_id=person.id))


# --- one person -------------------------------------------------------------------------------

def _grants_here(estate: Estate, user: User | None) -> list[tuple[RoleGrant, Unit | None]]:
    if user is None:
        return []
    units = select(Unit.id).where(Unit.estate_id == estate.id)
    rows = db.session.scalars(select(RoleGrant).where(
        RoleGrant.user_id == user.id, RoleGrant.role != "staff",
        (RoleGrant.estate_id == estate.id) | RoleGrant.unit_id.in_(units)).order_by(RoleGrant.id)).all()
    return [(g, db.session.get(Unit, g.unit_id) if g.unit_id else None) for g in rows]


def _person_page(estate: Estate, person: Person, *, form=None, errors=None, status: int = 200):
    user = access.login_of(db.session, person)
    tenancies = db.session.execute(select(Tenancy, Unit).join(Unit, Unit.id == Tenancy.unit_id).where(
        Tenancy.person_id == person.id, Unit.estate_id == estate.id).order_by(Tenancy.move_in.desc())).all()
    ownerships = db.session.execute(select(UnitOwnership, Unit).join(Unit, Unit.id == UnitOwnership.unit_id).where(
        UnitOwnership.person_id == person.id, Unit.estate_id == estate.id).order_by(UnitOwnership.since.desc())).all()
    units = db.session.scalars(select(Unit).where(Unit.estate_id == estate.id).order_by(Unit.number)).all()
    response = render("admin/person.html", estate=estate, person=person, user=user,
                      login=login_status(user), grants=_grants_here(estate, user),
                      tenancies=tenancies, ownerships=ownerships, units=units,
                      estate_roles=ESTATE_ROLES, unit_roles=UNIT_ROLES,
                      form=form or {name: getattr(person, name) or "" for name in PERSON_FIELDS},
                      errors=errors or {})
    response.status_code = status
    return response


@bp.route("/estates/<int:estate_id>/people/<int:person_id>", methods=["GET", "POST"])
def person(estate_id: int, person_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    found = _person_or_404(estate, person_id)
    if request.method == "GET":
        return _person_page(estate, found)
    values = _values()
    try:
        result = people_domain.update_person(db.session, estate, found, values, actor=current_user,
                                             user_id=current_user.id)
    except PersonError as error:
        db.session.rollback()
        return _person_page(estate, found, form=values, errors=error.errors, status=400)
    flash(gettext("Saved.") if result["new"] else gettext("Nothing changed."), "success")
    return redirect(url_for("admin.person", estate_id=estate.id, person_id=found.id))


@bp.post("/estates/<int:estate_id>/people/<int:person_id>/grants")
def grant_person(estate_id: int, person_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    found = _person_or_404(estate, person_id)
    role = (request.form.get("role") or "")[:32]
    place = (request.form.get("place") or "estate")[:32]
    unit = None
    if place != "estate":
        unit = db.session.scalar(select(Unit).where(Unit.id == _form_id("place"), Unit.estate_id == estate.id))
        if unit is None:
            return _person_page(estate, found, errors={"place": gettext("Choose the estate or one of its units.")},
                                status=400)
    try:
        result = access.grant_role(db.session, current_user, found, role, estate=estate if unit is None else None,
                                   unit=unit, invite=bool(request.form.get("invite")), user_id=current_user.id)
    except AccessError as error:
        db.session.rollback()
        return _person_page(estate, found, errors=error.errors, status=400)
    where = f"unit {unit.number}" if unit else estate.name
    flash(gettext("%(name)s is now %(role)s of %(where)s.", name=found.full_name, role=translated_label(role, "role").lower(),
                  where=where)
          + (" " + gettext("An invite was emailed to %(email)s.", email=result.user.email) if result.invite_link else ""),
          "success")
    return redirect(url_for("admin.person", estate_id=estate.id, person_id=found.id))


@bp.post("/estates/<int:estate_id>/people/<int:person_id>/revoke")
def revoke_person_grant(estate_id: int, person_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    found = _person_or_404(estate, person_id)
    grant = access.grant_in_estate(db.session, estate, _form_id("grant_id"))
    user = access.login_of(db.session, found)
    if grant is None or user is None or grant.user_id != user.id:
        abort(404)
    try:
        access.revoke_grant(db.session, current_user, estate, grant, user_id=current_user.id)
    except AccessError as error:
        db.session.rollback()
        return _person_page(estate, found, errors=error.errors, status=400)
    flash(gettext("%(role)s access taken away from %(name)s.", role=translated_label(grant.role, "role"), name=found.full_name),
          "success")
    return redirect(url_for("admin.person", estate_id=estate.id, person_id=found.id))


@bp.post("/estates/<int:estate_id>/people/<int:person_id>/invite")
def invite_person(estate_id: int, person_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    found = _person_or_404(estate, person_id)
    try:
        result = access.resend_invite(db.session, current_user, found, estate, user_id=current_user.id)
    except AccessError as error:
        db.session.rollback()
        return _person_page(estate, found, errors=error.errors, status=400)
    flash(gettext("A new invite was emailed to %(email)s.", email=result.user.email), "success")
    return redirect(url_for("admin.person", estate_id=estate.id, person_id=found.id))


@bp.post("/estates/<int:estate_id>/people/<int:person_id>/login")
def set_person_login(estate_id: int, person_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    staff_only()
    found = _person_or_404(estate, person_id)
    user = access.login_of(db.session, found)
    if user is None:
        abort(404)
    wanted = request.form.get("active") == "1"
    try:
        changed = access.set_login_active(db.session, current_user, user, wanted, user_id=current_user.id)
    except AccessError as error:
        db.session.rollback()
        return _person_page(estate, found, errors=error.errors, status=400)
    if changed:
        flash(gettext("%(email)s can sign in again.", email=user.email) if wanted
              else gettext("%(email)s is deactivated and signed out everywhere.", email=user.email), "success")
    return redirect(url_for("admin.person", estate_id=estate.id, person_id=found.id))


# --- a unit's people (a component of the unit page) ---------------------------------------------

def _unit_people(unit: Unit, *, errors=None, form=None, status: int = 200, notice: str | None = None):
    estate = db.session.get(Estate, unit.estate_id)
    tenancies = db.session.scalars(select(Tenancy).where(Tenancy.unit_id == unit.id)
                                   .order_by(Tenancy.move_out.is_not(None), Tenancy.move_in.desc())).all()
    ownerships = db.session.scalars(select(UnitOwnership).where(UnitOwnership.unit_id == unit.id)
                                    .order_by(UnitOwnership.until.is_not(None), UnitOwnership.since.desc())).all()
    grants = db.session.execute(select(RoleGrant, User).join(User, User.id == RoleGrant.user_id)
                                .where(RoleGrant.unit_id == unit.id).order_by(RoleGrant.id)).all()
    candidates = [row.person for row in estate_people(db.session, estate)]
    response = render("admin/unit_people.html", "unit_people", unit=unit, estate=estate,
                      tenancies=tenancies, ownerships=ownerships, grants=grants, candidates=candidates,
                      unit_roles=UNIT_ROLES, errors=errors or {}, form=form or {}, today=date.today(), notice=notice,
                      has_unit_page="admin.unit" in current_app.view_functions)
    response.status_code = status
    return response


def _chosen_person(estate: Estate) -> Person | dict | None:
    """The form's person: one of the estate's (person_id) or the values of a new one."""
    if request.form.get("person_id") not in (None, "", "new"):
        return person_of_estate(db.session, estate, _form_id("person_id"))
    return _values()


@bp.get("/units/<int:unit_id>/people")
def unit_people(unit_id: int):
    unit = unit_or_404(db.session, current_user, unit_id, ROLES)
    return _unit_people(unit)


def _add_to_unit(unit_id: int, kind: str):
    unit = unit_or_404(db.session, current_user, unit_id, ROLES)
    estate = db.session.get(Estate, unit.estate_id)
    form = {"kind": kind, **_values(), "person_id": request.form.get("person_id", "")[:20],
            "start": request.form.get("start", "")[:20]}
    chosen = _chosen_person(estate)
    start = _form_date("start")
    errors = {}
    if chosen is None:
        errors["person_id"] = "Choose a person of this estate, or “New person” and fill in their details."
    if start is None:
        errors["start"] = "Enter the date as YYYY-MM-DD."
    if errors:
        return _unit_people(unit, errors=errors, form=form, status=400)
    add = access.add_tenant if kind == "tenant" else access.add_owner
    try:
        _row, result = add(db.session, current_user, unit, chosen, start,
                           invite=bool(request.form.get("invite")), user_id=current_user.id)
    except (AccessError, PersonError) as error:
        db.session.rollback()
        return _unit_people(unit, errors=error.errors, form=form, status=400)
    return _unit_people(unit, notice=gettext("%(role)s added to unit %(number)s.", role=translated_label(kind, "role"),
                                              number=unit.number)
                        + (" " + gettext("An invite was emailed to %(email)s.", email=result.user.email) if result and result.invite_link else ""))


@bp.post("/units/<int:unit_id>/people/tenants")
def add_tenant(unit_id: int):
    return _add_to_unit(unit_id, "tenant")


@bp.post("/units/<int:unit_id>/people/owners")
def add_owner(unit_id: int):
    return _add_to_unit(unit_id, "owner")


@bp.post("/units/<int:unit_id>/people/end")
def end_unit_role(unit_id: int):
    unit = unit_or_404(db.session, current_user, unit_id, ROLES)
    kind = request.form.get("kind")
    model = {"tenancy": Tenancy, "ownership": UnitOwnership}.get(kind)
    row = db.session.get(model, _form_id("row_id")) if model and _form_id("row_id") else None
    if row is None or row.unit_id != unit.id:
        abort(404)
    end = _form_date("end")
    if end is None:
        return _unit_people(unit, errors={f"end_{kind}_{row.id}": gettext("Enter the date as YYYY-MM-DD.")}, status=400)
    try:
        if kind == "tenancy":
            access.end_tenancy(db.session, current_user, row, end, user_id=current_user.id)
        else:
            access.end_ownership(db.session, current_user, row, end, user_id=current_user.id)
    except AccessError as error:
        db.session.rollback()
        return _unit_people(unit, errors={f"end_{kind}_{row.id}": error.errors.get("end", str(error))},
                            status=400)
    return _unit_people(unit, notice=gettext("%(link)s ended; their access to unit %(number)s is taken away.",
                                             link=translated_label(kind, "unit_link"), number=unit.number))


@bp.post("/units/<int:unit_id>/people/grants")
def grant_unit(unit_id: int):
    unit = unit_or_404(db.session, current_user, unit_id, ROLES)
    estate = db.session.get(Estate, unit.estate_id)
    role = (request.form.get("role") or "")[:32]
    found = person_of_estate(db.session, estate, _form_id("person_id"))
    form = {"grant_person_id": request.form.get("person_id", "")[:20], "role": role}
    if found is None:
        return _unit_people(unit, errors={"grant_person_id": gettext("Choose a person of this estate.")}, form=form,
                            status=400)
    try:
        result = access.grant_role(db.session, current_user, found, role, unit=unit,
                                   invite=bool(request.form.get("invite")), user_id=current_user.id)
    except AccessError as error:
        db.session.rollback()
        errors = {("grant_" + k if k != "role" else "grant_role"): v for k, v in error.errors.items()}
        return _unit_people(unit, errors=errors, form=form, status=400)
    return _unit_people(unit, notice=gettext("%(name)s is now %(role)s of unit %(number)s.", name=found.full_name,
                                              role=translated_label(role, "role").lower(), number=unit.number)
                        + (" " + gettext("An invite was emailed to %(email)s.", email=result.user.email) if result.invite_link else ""))


@bp.post("/units/<int:unit_id>/people/revoke")
def revoke_unit_grant(unit_id: int):
    unit = unit_or_404(db.session, current_user, unit_id, ROLES)
    grant = db.session.get(RoleGrant, _form_id("grant_id")) if _form_id("grant_id") else None
    if grant is None or grant.unit_id != unit.id:
        abort(404)
    estate = db.session.get(Estate, unit.estate_id)
    try:
        access.revoke_grant(db.session, current_user, estate, grant, user_id=current_user.id)
    except AccessError as error:
        db.session.rollback()
        return _unit_people(unit, errors={"grant": str(error)}, status=400)
    return _unit_people(unit, notice=gettext("%(role)s access to unit %(number)s taken away.",
                                                         role=translated_label(grant.role, "role"), number=unit.number))
