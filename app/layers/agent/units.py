"""An agent's unit: what they may do for it (move in, move out, top up, read a meter) and refunds.

Views parse the form, check scope (`unit_or_404` with the agent role: another estate's unit is
a 404), make one call into `app/estates/tenancies.py` and render; a refusal comes back as
messages next to the fields with a 400 and nothing written.
"""
from datetime import date, datetime

from flask import abort, flash, request, url_for
from flask_babel import gettext
from flask_login import current_user
from sqlalchemy import select

from app import audit
from app.auth.scope import estate_or_404, unit_or_404
from app.estates import tenancies
from app.estates.access import AccessError
from app.estates.people import FIELDS as PERSON_FIELDS, PersonError, estate_people, person_of_estate
from app.extensions import db
from app.htmx import redirect, render
from app.i18n import DEFAULT_LANGUAGE, LANGUAGES, estate_language
from app.layers.agent import bp
from app.models import Estate, Meter, Tenancy
from app.models.moves import Refund
from app.reports.summaries import recent_pocket_activity, unit_cards
from app.routing import whole_number

ROLES = ("agent",)
FIELD_MAX = 300


def _form_id(name: str) -> int:
    return whole_number(request.form.get(name), 1) or 0


def _form_date(name: str, errors: dict[str, str]) -> date | None:
    text = (request.form.get(name) or "").strip()
    try:
        value = date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        value = None
    if value is None or not 1900 <= value.year <= 2200:
        errors[name] = gettext("Enter the date as YYYY-MM-DD.")
        return None
    return value


def _registers(prefix: str, meters: list[Meter], errors: dict[str, str]) -> dict:
    return {m.utility: tenancies.parse_register(request.form.get(f"{prefix}_{m.utility}"), f"{prefix}_{m.utility}",
                                                errors) for m in meters}


def _form(names) -> dict[str, str]:
    return {name: (request.form.get(name) or "")[:FIELD_MAX] for name in names}


def _today(estate: Estate) -> str:
    return datetime.now(estate.tz).date().isoformat()


@bp.get("/units/<int:unit_id>")
def unit(unit_id: int):
    found = unit_or_404(db.session, current_user, unit_id, ROLES)
    card = unit_cards(db.session, [found])[0]
    activity = recent_pocket_activity(db.session, [p.account_id for p in card.pockets], limit=10)
    return render("agent/unit.html", unit=found, estate=found.estate, card=card, activity=activity,
                  tenancy=tenancies.current_tenancy(db.session, found),
                  meters=tenancies.unit_meters(db.session, found))


# --- move-in --------------------------------------------------------------------------------------

def _default_language(estate: Estate) -> str:
    """The language a new tenant's form starts at: the estate's default, else English."""
    return estate_language(db.session, estate.id) or DEFAULT_LANGUAGE


def _move_in_page(unit, *, form=None, errors=None, status=200):
    estate = unit.estate
    default = _default_language(estate)
    response = render("agent/move_in.html", unit=unit, estate=estate, meters=tenancies.unit_meters(db.session, unit),
                      candidates=[row.person for row in estate_people(db.session, estate)],
                      occupant=tenancies.current_tenancy(db.session, unit), languages=LANGUAGES,
                      default_language=default,
                      form=form or {"move_in": _today(estate), "person_id": "new", "invite": "1", "language": default},
                      errors=errors or {})
    response.status_code = status
    return response


@bp.route("/units/<int:unit_id>/move-in", methods=["GET", "POST"])
def move_in(unit_id: int):
    found = unit_or_404(db.session, current_user, unit_id, ROLES)
    if request.method == "GET":
        return _move_in_page(found)
    meters = tenancies.unit_meters(db.session, found)
    form = _form([*PERSON_FIELDS, "person_id", "move_in", "invite", "language", "language_default",
                  *[f"opening_{m.utility}" for m in meters]])
    errors: dict[str, str] = {}
    day = _form_date("move_in", errors)
    language = form["language"].strip() or _default_language(found.estate)
    if language not in LANGUAGES:
        errors["language"] = gettext("Choose one of the languages listed.")
    openings = _registers("opening", meters, errors)
    if form["person_id"] not in ("", "new"):
        person = person_of_estate(db.session, found.estate, _form_id("person_id"))
        if person is None:
            errors["person_id"] = gettext("Choose a person of this estate, or “New person” and fill in their details.")
    else:
        person = {name: form[name] for name in PERSON_FIELDS}
        person["language"] = language
    if errors:
        return _move_in_page(found, form=form, errors=errors, status=400)
    if not isinstance(person, dict):
        _set_language(person, language, kept_default=form["language_default"])
    try:
        result = tenancies.move_in(db.session, current_user, found, person, day, openings,
                                   invite=bool(form["invite"]), user_id=current_user.id)
    except (AccessError, PersonError) as error:
        db.session.rollback()
        return _move_in_page(found, form=form, errors=error.errors, status=400)
    moved = gettext("%(name)s moved into unit %(number)s.", name=result.person_name, number=found.number)
    told = (gettext("An invite was emailed to %(email)s.", email=result.invite_email) if result.invite_email
            else gettext("An SMS with the account number went to %(phone)s.", phone=result.sms_to) if result.sms_to
            else "")
    flash(f"{moved} {told}".strip(), "success")
    return redirect(url_for("agent.unit", unit_id=found.id))


def _set_language(person, language: str, *, kept_default: str) -> None:
    """An existing person moved in: their language becomes the one chosen, audited (the caller commits).

    A person who already has a language keeps it when the agent left the list at the default it
    showed (`kept_default`): only a choice the agent made changes it.
    """
    if person.language == language or (person.language and language == kept_default):
        return
    audit.record(db.session, "person.language", person, old={"language": person.language},
                 new={"language": language}, estate_id=person.estate_id)
    person.language = language


# --- move-out -------------------------------------------------------------------------------------

def _move_out_page(unit, tenancy, *, form=None, errors=None, preview=None, status=200):
    estate = unit.estate
    response = render("agent/move_out.html", unit=unit, estate=estate, tenancy=tenancy,
                      meters=tenancies.unit_meters(db.session, unit), preview=preview,
                      form=form or {"move_out": _today(estate)}, errors=errors or {})
    response.status_code = status
    return response


@bp.route("/units/<int:unit_id>/move-out", methods=["GET", "POST"])
def move_out(unit_id: int):
    found = unit_or_404(db.session, current_user, unit_id, ROLES)
    tenancy = tenancies.current_tenancy(db.session, found)
    if tenancy is None:  # nobody to move out: the page says so (a 400 for a form sent anyway)
        return _move_out_page(found, None, status=200 if request.method == "GET" else 400)
    if request.method == "GET":
        return _move_out_page(found, tenancy)
    meters = tenancies.unit_meters(db.session, found)
    form = _form(["move_out", "confirm", *[f"closing_{m.utility}" for m in meters]])
    errors: dict[str, str] = {}
    day = _form_date("move_out", errors)
    closings = _registers("closing", meters, errors)
    if errors:
        return _move_out_page(found, tenancy, form=form, errors=errors, status=400)
    confirm = form["confirm"] == "1"
    tenancy_id, person_name = tenancy.id, tenancy.person.full_name
    try:
        result = tenancies.move_out(db.session, current_user, tenancy, day, closings, dry_run=not confirm,
                                    user_id=current_user.id)
    except AccessError as error:
        db.session.rollback()
        return _move_out_page(found, db.session.get(Tenancy, tenancy_id), form=form, errors=error.errors, status=400)
    if not confirm:
        return _move_out_page(found, db.session.get(Tenancy, tenancy_id), form=form, preview=result)
    return render("agent/move_out_done.html", unit=found, estate=found.estate, result=result, person_name=person_name)


# --- manual readings ------------------------------------------------------------------------------

def _reading_page(unit, *, form=None, errors=None, status=200, done=None):
    estate = unit.estate
    now = datetime.now(estate.tz)
    response = render("agent/reading.html", unit=unit, estate=estate, meters=tenancies.unit_meters(db.session, unit),
                      form=form or {"taken_at": now.strftime("%Y-%m-%dT%H:%M")}, errors=errors or {}, done=done)
    response.status_code = status
    return response


@bp.route("/units/<int:unit_id>/readings", methods=["GET", "POST"])
def reading(unit_id: int):
    found = unit_or_404(db.session, current_user, unit_id, ROLES)
    if request.method == "GET":
        return _reading_page(found)
    form = _form(["meter_id", "register", "taken_at"])
    errors: dict[str, str] = {}
    meter = next((m for m in tenancies.unit_meters(db.session, found) if m.id == _form_id("meter_id")), None)
    if meter is None:
        errors["meter_id"] = gettext("Choose one of the unit's meters.")
    register = tenancies.parse_register(form["register"], "register", errors)
    if register is None and "register" not in errors:
        errors["register"] = gettext("Enter the register shown on the meter.")
    try:
        at = datetime.fromisoformat(form["taken_at"]).replace(tzinfo=found.estate.tz) if form["taken_at"] else None
    except ValueError:
        at = None
    if at is None:
        errors["taken_at"] = gettext("Enter the date and time the meter was read.")
    if errors:
        return _reading_page(found, form=form, errors=errors, status=400)
    try:
        done = tenancies.enter_reading(db.session, current_user, meter, register, at)
    except AccessError as error:
        db.session.rollback()
        return _reading_page(found, form=form, errors=error.errors, status=400)
    return _reading_page(found, done=done)


# --- refunds --------------------------------------------------------------------------------------

@bp.route("/estates/<int:estate_id>/refunds", methods=["GET", "POST"])
def refunds(estate_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        if not current_user.is_staff:
            abort(404)
        refund = db.session.scalar(select(Refund).where(Refund.id == _form_id("refund_id"),
                                                        Refund.estate_id == estate.id))
        if refund is None:
            abort(404)
        try:
            tenancies.mark_refund_paid(db.session, current_user, refund, request.form.get("reference", "")[:100])
            flash(gettext("Refund %(id)s is marked paid.", id=refund.id), "success")
            return redirect(url_for("agent.refunds", estate_id=estate.id))
        except AccessError as error:
            db.session.rollback()
            errors = {f"reference_{refund.id}": error.errors.get("reference", str(error))}
            status = 400
    response = render("agent/refunds.html", estate=estate, rows=tenancies.refunds_of(db.session, estate), errors=errors)
    response.status_code = status
    return response
