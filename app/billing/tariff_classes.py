"""Tariff classes (C5, issue 14 item 8): an estate's price lists (1PWR Benin's PME and
residential prices), the class each unit pays, and what the administration page shows.

- A unit or version with no class belongs to the estate's default class; `default_class()`
  creates that class ("standard") the first time anything needs it, so creating an estate
  needs no call here.
- `create_class()`, `rename_class()` and `assign_class()` are what the pages call: each
  validates, audits (old and new values) and commits once.
- Billing reads classes through `app.billing.tariffs` (`unit_class_keys`, `prices_for`): a
  class follows the default class's prices until its own first version for a utility starts.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import audit
from app.billing import BillingError
from app.models import Estate, Unit, utcnow
from app.models.metering import TariffVersion
from app.models.tariff import TariffClass

DEFAULT_CODE = "standard"
DEFAULT_NAME = "Standard"
CODE_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
NAME_MAX = 100
MAX_UNITS = 10_000  # one assignment's units: a bound on the form, above any estate's size here


class TariffClassError(BillingError):
    """A tariff class change refused; `errors` says why, by form field."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


class InvalidClassCode(TariffClassError):
    """The code is empty, too long or not lower-case letters, digits, - and _."""


class ClassCodeTaken(TariffClassError):
    """Another class of the estate has this code."""


class InvalidClassName(TariffClassError):
    """The name is empty, too long or has control characters."""


class UnknownClass(TariffClassError):
    """The class is not one of the estate's."""


class UnknownUnits(TariffClassError):
    """No units chosen, or some are not the estate's."""


# --- reads ------------------------------------------------------------------------------------


def find_default(session: Session, estate_id: int) -> TariffClass | None:
    """The estate's default class if it exists yet (no writes)."""
    return session.scalar(select(TariffClass).where(TariffClass.estate_id == estate_id,
                                                    TariffClass.is_default.is_(True)))


def default_class(session: Session, estate: Estate) -> TariffClass:
    """The estate's default class, created ("standard") the first time it is needed; the caller commits."""
    found = find_default(session, estate.id)
    if found is not None:
        return found
    created = TariffClass(estate_id=estate.id, code=DEFAULT_CODE, name=DEFAULT_NAME, is_default=True)
    try:
        with session.begin_nested():  # a concurrent request may create it first
            session.add(created)
    except IntegrityError:
        return find_default(session, estate.id)
    audit.record(session, "tariff_class.create", created, estate_id=estate.id,
                 new={"code": created.code, "name": created.name, "default": True})
    return created


def estate_classes(session: Session, estate_id: int) -> list[TariffClass]:
    """The estate's classes, the default first, then by name."""
    return list(session.scalars(select(TariffClass).where(TariffClass.estate_id == estate_id)
                                .order_by(TariffClass.is_default.desc(), TariffClass.name)))


def class_of_unit(session: Session, unit: Unit) -> TariffClass | None:
    """The class a unit pays: its own, else the estate's default (None when none exists yet)."""
    if unit.tariff_class_id is not None:
        return session.get(TariffClass, unit.tariff_class_id)
    return find_default(session, unit.estate_id)


def unit_class_name(session: Session, unit: Unit) -> str | None:
    """The unit's class name, only when its estate has several classes (else nothing to tell)."""
    count = session.scalar(select(func.count(TariffClass.id)).where(TariffClass.estate_id == unit.estate_id))
    if not count or count < 2:
        return None
    found = class_of_unit(session, unit)
    return found.name if found is not None else DEFAULT_NAME


def class_name_of_version(session: Session, version: TariffVersion) -> str:
    """The name of the class a version belongs to."""
    if version.tariff_class_id is not None:
        return session.get(TariffClass, version.tariff_class_id).name
    found = find_default(session, version.estate_id)
    return found.name if found is not None else DEFAULT_NAME


@dataclass
class ClassRow:
    """One class on the administration page: units, and the version in force per utility."""

    tariff_class: TariffClass | None  # None: the default class, not created yet
    name: str
    code: str
    is_default: bool
    units: int
    current: dict[str, TariffVersion] = field(default_factory=dict)  # by utility
    scheduled: int = 0  # versions with a later date


def class_overview(session: Session, estate: Estate, now: datetime | None = None) -> list[ClassRow]:
    """The estate's classes with their unit counts and the versions they pay today."""
    from app.billing.tariffs import class_versions

    today = (now or utcnow()).astimezone(estate.tz).date()
    classes = estate_classes(session, estate.id)
    default = next((c for c in classes if c.is_default), None)
    counts = Counter()
    for class_id, number in session.execute(select(Unit.tariff_class_id, func.count(Unit.id))
                                            .where(Unit.estate_id == estate.id).group_by(Unit.tariff_class_id)):
        counts[None if class_id is None or (default is not None and class_id == default.id) else class_id] += number
    rows = [ClassRow(default, default.name if default else DEFAULT_NAME, default.code if default else DEFAULT_CODE,
                     True, counts[None])]
    rows += [ClassRow(c, c.name, c.code, False, counts[c.id]) for c in classes if not c.is_default]
    utilities = sorted(set(session.scalars(select(TariffVersion.utility).where(
        TariffVersion.estate_id == estate.id).distinct())))
    for row in rows:
        key = None if row.is_default else row.tariff_class.id
        for utility in utilities:
            versions = class_versions(session, estate.id, utility, key)
            in_force = [v for v in versions if v.effective_from <= today]
            if in_force:
                row.current[utility] = in_force[-1]
            own = [v for v in versions if v.effective_from > today
                   and (key is None or v.tariff_class_id == key)]
            row.scheduled += len(own)
    return rows


# --- writes -----------------------------------------------------------------------------------


def _clean_name(name: str | None) -> str:
    text = " ".join((name or "").split())
    if not text:
        raise InvalidClassName({"name": "Give the class a name, such as “PME (small business)”."})
    if len(text) > NAME_MAX:
        raise InvalidClassName({"name": f"A class name has at most {NAME_MAX} characters."})
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise InvalidClassName({"name": "A class name cannot hold control characters."})
    return text


def create_class(session: Session, estate: Estate, code: str | None, name: str | None, *,
                 user_id: int | None = None, now: datetime | None = None) -> TariffClass:
    """Add a class to the estate (its default class is created first if missing), audited; commits once."""
    code_text = (code or "").strip().lower()
    errors: dict[str, str] = {}
    try:
        clean = _clean_name(name)
    except InvalidClassName as error:
        errors.update(error.errors)
        clean = None
    if not CODE_PATTERN.fullmatch(code_text):
        errors["code"] = ("A code is 1 to 32 lower-case letters, digits, - or _, starting with a letter "
                          "or digit (e.g. pme).")
    elif session.scalar(select(TariffClass.id).where(TariffClass.estate_id == estate.id,
                                                     TariffClass.code == code_text)):
        raise ClassCodeTaken({"code": f"{estate.name} already has a class with the code {code_text}."})
    if errors:
        raise (InvalidClassCode if "code" in errors else InvalidClassName)(errors)
    default_class(session, estate)
    created = TariffClass(estate_id=estate.id, code=code_text, name=clean, is_default=False,
                          created_at=now or utcnow())
    session.add(created)
    session.flush()
    audit.record(session, "tariff_class.create", created, estate_id=estate.id,
                 new={"code": created.code, "name": created.name, "default": False})
    session.commit()
    return created


def _class_of_estate(session: Session, estate: Estate, class_id) -> TariffClass:
    """The estate's class with this id (text from a form), or UnknownClass."""
    try:
        number = int(str(class_id).strip())
    except (TypeError, ValueError):
        number = None
    found = session.get(TariffClass, number) if number is not None and 0 < number < 2**31 else None
    if found is None or found.estate_id != estate.id:
        raise UnknownClass({"class_id": f"Choose one of {estate.name}'s tariff classes."})
    return found


def rename_class(session: Session, estate: Estate, class_id, name: str | None, *,
                 user_id: int | None = None, now: datetime | None = None) -> TariffClass:
    """Give one of the estate's classes a new name, audited; commits once."""
    if str(class_id).strip() == DEFAULT_CODE:
        found = default_class(session, estate)  # the default class may not exist yet
    else:
        found = _class_of_estate(session, estate, class_id)
    clean = _clean_name(name)
    old = found.name
    if clean != old:
        found.name = clean
        audit.record(session, "tariff_class.rename", found, estate_id=estate.id,
                     old={"name": old}, new={"name": clean})
    session.commit()
    return found


@dataclass
class Assignment:
    """What `assign_class` did: the class, and the units whose class changed or already had it."""

    tariff_class: TariffClass
    changed: list[Unit]
    unchanged: list[Unit]


def _unit_ids(unit_ids: Iterable) -> set[int]:
    ids = set()
    for value in unit_ids:
        try:
            number = int(str(value).strip())
        except (TypeError, ValueError):
            raise UnknownUnits({"unit_ids": f"“{str(value)[:40]}” is not a unit."}) from None
        if not 0 < number < 2**31:
            raise UnknownUnits({"unit_ids": f"“{number}” is not a unit."})
        ids.add(number)
    return ids


def assign_class(session: Session, estate: Estate, unit_ids: Iterable, class_id, *,
                 user_id: int | None = None, now: datetime | None = None) -> Assignment:
    """Put units of the estate on one of its classes, one audit row per change; commits once."""
    chosen = _class_of_estate(session, estate, class_id)
    ids = _unit_ids(list(unit_ids)[:MAX_UNITS + 1])
    if not ids:
        raise UnknownUnits({"unit_ids": "Choose at least one unit."})
    if len(ids) > MAX_UNITS:
        raise UnknownUnits({"unit_ids": f"Assign at most {MAX_UNITS:,} units at a time."})
    units = list(session.scalars(select(Unit).where(Unit.id.in_(ids), Unit.estate_id == estate.id)
                                 .order_by(Unit.number)))
    if len(units) != len(ids):
        raise UnknownUnits({"unit_ids": f"Some of the chosen units are not {estate.name}'s."})
    default = default_class(session, estate)
    target = None if chosen.is_default else chosen.id  # None: the default class
    names = {c.id: c for c in estate_classes(session, estate.id)}
    changed, unchanged = [], []
    for unit in units:
        current = None if unit.tariff_class_id in (None, default.id) else unit.tariff_class_id
        if current == target:
            unchanged.append(unit)
            continue
        was = names.get(current) if current else default
        unit.tariff_class_id = target
        audit.record(session, "unit.tariff_class", unit, estate_id=estate.id,
                     old={"unit": unit.number, "tariff_class": was.code},
                     new={"unit": unit.number, "tariff_class": chosen.code})
        changed.append(unit)
    session.commit()
    return Assignment(chosen, changed, unchanged)


# --- notices and impact: which units a version reaches ----------------------------------------


def units_paying(session: Session, version: TariffVersion) -> set[int]:
    """The ids of the units whose class pays `version` (its class, and classes still following
    the default class at its date when it is a default-class version)."""
    default = find_default(session, version.estate_id)
    default_id = default.id if default is not None else None
    own = version.tariff_class_id if version.tariff_class_id not in (None, default_id) else None
    units = session.execute(select(Unit.id, Unit.tariff_class_id).where(Unit.estate_id == version.estate_id)).all()
    if own is not None:
        return {unit_id for unit_id, class_id in units if class_id == own}
    # A class follows the default until its own first version for the utility starts.
    firsts: dict[int, date] = defaultdict(lambda: date.max)
    for class_id, first in session.execute(
            select(TariffVersion.tariff_class_id, func.min(TariffVersion.effective_from))
            .where(TariffVersion.estate_id == version.estate_id, TariffVersion.utility == version.utility,
                   TariffVersion.tariff_class_id.is_not(None)).group_by(TariffVersion.tariff_class_id)):
        firsts[class_id] = first
    return {unit_id for unit_id, class_id in units
            if class_id in (None, default_id) or firsts[class_id] > version.effective_from}
