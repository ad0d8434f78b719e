"""People of an estate (X6): register and edit a person, and find the people an estate has.

A person belongs to an estate when its administration registered them (`persons.estate_id`)
or when they hold a tenancy, an ownership or a role grant in it. Mini-grid customers often
have only a phone, so a person needs a full name and an email or a phone: emails are stored
stripped and lower-cased, phones in E.164 read in the estate's country (`app.phones`). Two
people of one estate never share an email or a phone: the refusal names the one who has it.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from flask_babel import gettext
from app import audit
from app.models import Estate, Person, RoleGrant, Tenancy, Unit, UnitOwnership, User
from app.models.base import utcnow
from app.phones import InvalidPhone, to_e164

MAX_NAME = 200
MAX_EMAIL = 254
MAX_PHONE_TEXT = 40
EMAIL_SHAPE = re.compile(r"^[^@\s<>\"(),;:\\\[\]]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                         r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
FIELDS = ("full_name", "email", "phone")


class PersonError(ValueError):
    """A person that cannot be saved; `errors` maps a form field to its message."""

    def __init__(self, errors: dict[str, str], existing: Person | None = None):
        super().__init__("; ".join(errors.values()))
        self.errors = errors
        self.existing = existing  # the person who already has the email or phone, if that is why


class PersonInvalid(PersonError):
    """A field is missing or not in a form we can store."""


class DuplicatePerson(PersonError):
    """Another person of the estate already has this email or phone (see `existing`)."""


def normalise_email(raw: str | None) -> str | None:
    """The email stripped and lower-cased, None when empty; raise PersonInvalid when malformed."""
    text = (raw or "").strip()
    if not text:
        return None
    text = text.lower()
    if len(text) > MAX_EMAIL or not EMAIL_SHAPE.match(text) or not text.isascii():
        raise PersonInvalid({"email": gettext("Enter an email address like name@example.com.")})
    return text


def normalise_phone(raw: str | None, country: str | None) -> str | None:
    """The phone in E.164 read in `country`, None when empty; raise PersonInvalid when unreadable."""
    text = (raw or "").strip()
    if not text:
        return None
    where = f" of {country}" if country else ""
    if len(text) > MAX_PHONE_TEXT:
        raise PersonInvalid({"phone": gettext("That is too long for a phone number.")})
    try:
        return to_e164(text, country)
    except InvalidPhone:
        raise PersonInvalid({"phone": f"Enter a phone number{where}, like 082 123 4567, "
                                      "or in international form, like +27 82 123 4567."}) from None


def clean_values(values: Mapping[str, str | None], country: str | None, *,
                 require_name: bool = True) -> dict[str, str | None]:
    """Validate the form's values (all errors at once) and return them normalised."""
    errors: dict[str, str] = {}
    clean: dict[str, str | None] = {}
    name = CONTROL.sub(" ", values.get("full_name") or "").strip()
    name = re.sub(r"\s+", " ", name)
    if require_name and not name:
        errors["full_name"] = gettext("Enter the person's full name.")
    elif len(name) > MAX_NAME:
        errors["full_name"] = gettext("Use at most %(count)s characters.", count=MAX_NAME)
    clean["full_name"] = name
    for key, normaliser in (("email", lambda v: normalise_email(v)),
                            ("phone", lambda v: normalise_phone(v, country))):
        try:
            clean[key] = normaliser(values.get(key))
        except PersonInvalid as error:
            errors.update(error.errors)
    if "language" in values:  # a person's own language (X8); empty: the estate's default
        from app.i18n import known

        wanted = (values.get("language") or "").strip()
        if wanted and known(wanted) != wanted:
            errors["language"] = gettext("Choose one of the languages listed.")
        clean["language"] = wanted or None
    if not errors and not clean["email"] and not clean["phone"]:
        errors["email"] = gettext("Enter an email or a phone number (one of them is enough).")
        errors["phone"] = gettext("Enter a phone number or an email.")
    if errors:
        raise PersonInvalid(errors)
    return clean


# --- who belongs to an estate -----------------------------------------------------------

def estate_person_ids(estate_id: int):
    """Select the ids of the estate's people: registered to it, or with a tenancy, ownership or grant in it."""
    units = select(Unit.id).where(Unit.estate_id == estate_id)
    tenants = select(Tenancy.person_id).where(Tenancy.unit_id.in_(units))
    owners = select(UnitOwnership.person_id).where(UnitOwnership.unit_id.in_(units))
    granted = select(User.person_id).join(RoleGrant, RoleGrant.user_id == User.id).where(
        User.person_id.is_not(None),
        or_(RoleGrant.estate_id == estate_id, RoleGrant.unit_id.in_(units)))
    return select(Person.id).where(or_(Person.estate_id == estate_id, Person.id.in_(tenants),
                                       Person.id.in_(owners), Person.id.in_(granted)))


def person_of_estate(session: Session, estate: Estate, person_id: int) -> Person | None:
    """The person if they belong to the estate, else None (the view answers 404)."""
    from app.routing import INTEGER_MAX

    if not 0 < person_id <= INTEGER_MAX:
        return None
    return session.scalar(select(Person).where(Person.id == person_id,
                                               Person.id.in_(estate_person_ids(estate.id))))


def _duplicate(session: Session, estate: Estate, key: str, value: str | None,
               exclude_id: int | None) -> Person | None:
    if not value:
        return None
    column = func.lower(Person.email) if key == "email" else Person.phone
    query = select(Person).where(column == value, Person.id.in_(estate_person_ids(estate.id)))
    if exclude_id is not None:
        query = query.where(Person.id != exclude_id)
    return session.scalars(query.order_by(Person.id).limit(1)).first()


def _refuse_duplicates(session: Session, estate: Estate, clean: dict, exclude_id: int | None) -> None:
    for key, what in (("email", "email"), ("phone", "phone number")):
        existing = _duplicate(session, estate, key, clean.get(key), exclude_id)
        if existing is not None:
            raise DuplicatePerson({key: f"{existing.full_name} already has this {what} in {estate.name}."},
                                  existing)


def _login_email_taken(session: Session, email: str | None, person: Person | None) -> bool:
    """Whether a login of someone else already signs in with this email."""
    if not email:
        return False
    other = session.scalar(select(User).where(func.lower(User.email) == email))
    return other is not None and (person is None or other.person_id != person.id)


def create_person(session: Session, estate: Estate, values: Mapping[str, str | None], *,
                  user_id: int | None = None) -> Person:
    """Register a person to the estate (validated, normalised, not a duplicate); commits once."""
    person = register_person(session, estate, values)
    session.commit()
    return person


def register_person(session: Session, estate: Estate, values: Mapping[str, str | None]) -> Person:
    """Validate and add a person registered to the estate, audited; the caller commits."""
    clean = clean_values(values, estate.country)
    _refuse_duplicates(session, estate, clean, None)
    if _login_email_taken(session, clean["email"], None):
        other = session.scalar(select(User).where(func.lower(User.email) == clean["email"]))
        if other is not None and other.person_id is not None:
            raise DuplicatePerson({"email": gettext("Another person's login already uses this email.")})
    person = Person(estate_id=estate.id, created_at=utcnow(), **clean)
    session.add(person)
    session.flush()
    audit.record(session, "person.created", person, new=clean, estate_id=estate.id)
    return person


def update_person(session: Session, estate: Estate, person: Person, values: Mapping[str, str | None], *,
                  actor: User | None = None, user_id: int | None = None) -> dict[str, dict]:
    """Edit a person's name, email and phone (their login's email follows); commits once.

    An agent (`actor` not staff) may not move the email of a login that reaches past the
    estates they administer: with a reset link sent to the new address they would take it over.
    Returns {"old": ..., "new": ...} of the fields that changed (empty when nothing did).
    """
    clean = clean_values(values, estate.country)
    _refuse_duplicates(session, estate, clean, person.id)
    if actor is not None and not actor.is_staff and clean["email"] != person.email:
        login = session.scalar(select(User).where(User.person_id == person.id).order_by(User.id).limit(1))
        if login is not None and _reaches_past(session, login, actor):
            raise PersonInvalid({"email": "This login has access outside the estates you administer: "
                                          "they change their email on My account, or Meterwise staff do."})
    return _apply(session, person, clean, estate_id=estate.id)


def _reaches_past(session: Session, login: User, actor: User) -> bool:
    """Whether the login holds a grant outside the estates the actor administers (or staff)."""
    from app.auth.scope import estate_ids_query

    mine = estate_ids_query(actor, ("agent",))
    unit_estate = select(Unit.estate_id).where(Unit.id == RoleGrant.unit_id).scalar_subquery()
    outside = session.scalar(select(RoleGrant.id).where(
        RoleGrant.user_id == login.id,
        or_(RoleGrant.role == "staff",
            (RoleGrant.estate_id.is_not(None)) & RoleGrant.estate_id.not_in(mine),
            (RoleGrant.unit_id.is_not(None)) & unit_estate.not_in(mine))).limit(1))
    return outside is not None


def _apply(session: Session, person: Person, clean: dict, *, estate_id: int | None) -> dict[str, dict]:
    login = session.scalar(select(User).where(User.person_id == person.id).order_by(User.id).limit(1))
    if clean.get("email") != person.email and clean.get("email") and \
            _login_email_taken(session, clean["email"], person):
        raise DuplicatePerson({"email": gettext("Another login already signs in with this email.")})
    if login is not None and "email" in clean and not clean["email"]:
        raise PersonInvalid({"email": gettext("This person signs in with their email: it cannot be removed.")})
    old, new = audit.changes(person, clean)
    if not new:
        session.rollback()
        return {"old": {}, "new": {}}
    if "email" in new and login is not None:
        login.email = new["email"]
    session.flush()
    audit.record(session, "person.updated", person, old=old, new=new,
                 estate_id=estate_id if estate_id is not None else person.estate_id)
    session.commit()
    return {"old": old, "new": new}


def update_own_contact(session: Session, user: User, values: Mapping[str, str | None], *,
                       country: str | None) -> dict[str, dict]:
    """A signed-in person edits their own email and phone (and their login's email); commits once."""
    result = change_own_contact(session, user, values, country=country)
    session.commit()
    return result


def change_own_contact(session: Session, user: User, values: Mapping[str, str | None], *,
                       country: str | None) -> dict[str, dict]:
    """Apply a person's own new email and phone (and their login's email); the caller commits.

    Duplicates are checked in the estate that registered them, if any; a login's email stays
    unique across Meterwise.
    """
    person = user.person
    wanted = {"email": values.get("email"), "phone": values.get("phone"),
              "full_name": (person.full_name if person else user.email)}
    clean = clean_values(wanted, country)
    if not clean["email"]:
        raise PersonInvalid({"email": gettext("You sign in with your email: it cannot be empty.")})
    if person is None:
        person = Person(full_name=user.email, email=user.email)
        session.add(person)
        session.flush()
        user.person_id = person.id
        user.person = person
    if person.estate_id is not None:
        estate = session.get(Estate, person.estate_id)
        _refuse_duplicates(session, estate, clean, person.id)
    if clean["email"] != user.email.lower() and _login_email_taken(session, clean["email"], person):
        raise DuplicatePerson({"email": gettext("Another login already signs in with this email.")})
    del clean["full_name"]
    old, new = audit.changes(person, clean)
    if user.email != clean["email"]:
        old.setdefault("login_email", user.email)
        new["login_email"] = clean["email"]
        user.email = clean["email"]
    if not new:
        return {"old": {}, "new": {}}
    session.flush()
    audit.record(session, "person.updated_own", person, old=old, new=new, estate_id=person.estate_id)
    return {"old": old, "new": new}


# --- listing ------------------------------------------------------------------------------

LOGIN_STATUSES = ("none", "invited", "active", "inactive")


def login_status(user: User | None) -> str:
    """none (no login), invited (no password yet), active, or inactive (deactivated by staff)."""
    if user is None:
        return "none"
    if not user.active:
        return "inactive"
    return "active" if user.password_hash else "invited"


@dataclass
class PersonRow:
    person: Person
    user: User | None
    roles: list[str] = field(default_factory=list)  # roles in this estate, in ROLES order

    @property
    def login(self) -> str:
        return login_status(self.user)


def estate_roles(session: Session, estate: Estate, person_ids: list[int]) -> dict[int, set[str]]:
    """Each person's roles in the estate: their grants there, and current tenancies and ownerships."""
    from datetime import date

    roles: dict[int, set[str]] = {pid: set() for pid in person_ids}
    if not person_ids:
        return roles
    units = select(Unit.id).where(Unit.estate_id == estate.id)
    for pid, role in session.execute(
            select(User.person_id, RoleGrant.role).join(RoleGrant, RoleGrant.user_id == User.id)
            .where(User.person_id.in_(person_ids),
                   or_(RoleGrant.estate_id == estate.id, RoleGrant.unit_id.in_(units)))):
        roles[pid].add(role)
    today = date.today()
    for pid in session.scalars(select(Tenancy.person_id).where(
            Tenancy.person_id.in_(person_ids), Tenancy.unit_id.in_(units),
            or_(Tenancy.move_out.is_(None), Tenancy.move_out >= today))):
        roles[pid].add("tenant")
    for pid in session.scalars(select(UnitOwnership.person_id).where(
            UnitOwnership.person_id.in_(person_ids), UnitOwnership.unit_id.in_(units),
            or_(UnitOwnership.until.is_(None), UnitOwnership.until >= today))):
        roles[pid].add("owner")
    return roles


def estate_people(session: Session, estate: Estate, *, search: str = "", role: str = "",
                  limit: int = 500) -> list[PersonRow]:
    """The estate's people by name, filtered by a search (name, email, phone) and a role."""
    from app.models.people import ROLES

    query = select(Person).where(Person.id.in_(estate_person_ids(estate.id)))
    text = (search or "").strip()[:100]
    if text:
        pattern = "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        digits = re.sub(r"\D", "", text)
        terms = [func.lower(Person.full_name).like(pattern, escape="\\"),
                 func.lower(Person.email).like(pattern, escape="\\")]
        if len(digits) >= 3:
            terms.append(Person.phone.like(f"%{digits[1:] if digits.startswith('0') else digits}%"))
        query = query.where(or_(*terms))
    people = list(session.scalars(query.order_by(func.lower(Person.full_name), Person.id)))
    ids = [p.id for p in people]
    logins = {}
    if ids:
        for user in session.scalars(select(User).where(User.person_id.in_(ids)).order_by(User.id)):
            logins.setdefault(user.person_id, user)
    roles = estate_roles(session, estate, ids)
    rows = [PersonRow(p, logins.get(p.id), [r for r in ROLES if r in roles[p.id]]) for p in people]
    if role == "none":
        rows = [r for r in rows if not r.roles]
    elif role:
        rows = [r for r in rows if role in r.roles]
    return rows[:limit]
