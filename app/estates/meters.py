"""Meters of an estate (X6): adding one to a unit or the estate, editing it, and replacing it.

- `add_meter` registers a meter: its serial in the canonical form ingest matches on
  (`canonical_serial`: "000023022673" and "23022673" are one meter), a DevEUI in the form
  ChirpStack uplinks are matched on (16 hexadecimal digits, stored lower case), its utility,
  role, protocol, interval, register size and whether it is net-metered. A unit has one
  attached meter per utility (its pocket's meter); attaching one opens that pocket.
- `update_meter` edits what can change without rewriting history: the serial, utility and
  role name a meter's readings and charges, so they are fixed once it has readings.
- `replace_meter` swaps a unit's meter without a billing gap: the old meter's closing reading
  goes through `ingest()` (its last consumption billed like any reading), the new meter's
  opening reading through `ingest()` too, as its baseline (a first reading bills nothing),
  and the old meter is detached (`detached_at`, `replaced_by_meter_id`): credit control no
  longer commands it and ingest refuses its readings. Billing keys the month's standing
  charge and block position by the unit and utility across the swap (app.billing.consumption).

Each action is audited (old and new values) and commits once. Errors: `MeterError` with a
field-keyed `errors` dict, one subclass per broken rule.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from flask_babel import gettext, lazy_gettext as _l
from app import audit
from app.labels import label
from app.ledger.accounts import open_wallet
from app.metering import credit_control, validation
from app.metering.decoders import HTTP_TOPIC, MAX_ID, MAX_REGISTER
from app.metering.ingest import IngestReport, Message, ingest
from app.models import Estate, Meter, Unit, utcnow
from app.models.meter import METER_ROLES, PROTOCOLS, UTILITIES, canonical_serial
from app.money import UTILITY_UNITS

SERIAL_CHARACTERS = re.compile(r"^[A-Z0-9._-]+$")  # fits MQTT topics (no '/', '+', '#') and URLs
EUI_SEPARATORS = re.compile(r"[\s:\-]")
EUI_DIGITS = re.compile(r"^[0-9a-f]{16}$")
MAX_INTERVAL = 1440
MAX_REGISTER_DIGITS = 14  # numeric(20, 6): 14 whole digits
REGISTER_TEXT = re.compile(r"^\d{1,14}(\.\d{1,6})?$")
ROLE_ON_UNIT = ("unit", "solar")  # a bulk meter measures the estate's supply: it has no unit
FIELDS = ("serial", "dev_eui", "utility", "role", "protocol", "interval_minutes", "register_digits",
          "bidirectional")


class MeterError(ValueError):
    """A meter change the rules refuse; `errors` says why, per form field."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class InvalidMeterValues(MeterError):
    """A value is missing, malformed or out of range."""


class DuplicateMeter(MeterError):
    """The serial or DevEUI is already registered to another meter."""


class MeterAlreadyOnUnit(MeterError):
    """The unit already has an attached meter of that utility: it is replaced, not doubled."""


class MeterHistoryFixed(MeterError):
    """The serial, utility or role of a meter with readings, or anything of a detached meter."""


class ReplacementRefused(MeterError):
    """The closing or opening reading cannot stand, or the meter cannot be replaced."""


@dataclass(frozen=True)
class MeterSaved:
    """A meter added or edited, and what changed (field -> (old, new))."""

    meter: Meter
    changed: dict[str, tuple] = field(default_factory=dict)


@dataclass(frozen=True)
class Replacement:
    """A replacement: the detached meter, the meter now on the unit, and what ingest did."""

    old: Meter
    new: Meter
    closing: IngestReport
    opening: IngestReport


# --- parsing ------------------------------------------------------------------------------


def normalise_dev_eui(raw: str | None) -> str | None:
    """A DevEUI as ChirpStack uplinks are matched on: 16 hex digits, lower case; None when blank.

    Separators people copy from labels (`00-04-A3-...`, `00:04:a3:...`, spaces) are dropped.
    Raises ValueError for anything else.
    """
    text = EUI_SEPARATORS.sub("", str(raw or "")).lower()
    if not text:
        return None
    if not EUI_DIGITS.match(text):
        raise ValueError("A DevEUI is 16 hexadecimal digits (0-9, A-F), e.g. 0004A30B001C0530.")
    return text


def _text(values: dict, name: str) -> str:
    value = values.get(name)
    return "" if value is None else str(value).strip()


def _flag(value) -> bool:
    if isinstance(value, bool):
        return value
    return str(value or "").strip().lower() in {"1", "on", "true", "yes"}


def _whole(values: dict, name: str, low: int, high: int, errors: dict, message: str) -> int | None:
    text = _text(values, name)
    if not text:
        return None
    if not re.fullmatch(r"\d{1,5}", text) or not low <= int(text) <= high:
        errors[name] = message
        return None
    return int(text)


def parse_register(text, name: str, errors: dict) -> Decimal | None:
    """A register as typed: a plain number of up to 14 whole digits and 6 decimals."""
    value = "" if text is None else str(text).strip().replace(" ", "")
    if not value:
        errors[name] = gettext("Enter the register reading shown on the meter.")
        return None
    if not REGISTER_TEXT.match(value):
        errors[name] = gettext("Enter a number such as 12345.6 (up to 14 digits and 6 decimals, no units).")
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:  # the pattern makes this unreachable; keep the promise anyway
        errors[name] = gettext("Enter a number such as 12345.6.")
        return None
    if number >= MAX_REGISTER:
        errors[name] = gettext("That register is too large for a meter.")
        return None
    return number


def parse_local_time(text, estate: Estate, name: str, errors: dict) -> datetime | None:
    """A local date and time as a datetime-local field sends it (2026-12-02T10:30), as UTC."""
    if isinstance(text, datetime):
        if text.tzinfo is None:
            errors[name] = gettext("The time needs a timezone.")
            return None
        return text
    value = "" if text is None else str(text).strip()
    if not value:
        errors[name] = gettext("Enter the date and time of the reading.")
        return None
    try:
        moment = datetime.fromisoformat(value) if len(value) <= 32 else None
    except ValueError:
        moment = None
    if moment is None:
        errors[name] = gettext("Enter a date and time such as 2026-12-02 10:30.")
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=estate.tz)
    try:
        return moment.astimezone(utcnow().tzinfo)
    except (OverflowError, ValueError):
        errors[name] = gettext("That time is out of range.")
        return None


def _parse(session: Session, values: dict, *, estate: Estate, unit: Unit | None, meter: Meter | None,
           errors: dict, fixed: dict | None = None) -> dict:
    """Check a meter form's values; return the typed values (fields with errors are left out)."""
    fixed = fixed or {}
    parsed: dict = {}
    raw_serial = _text(values, "serial") if "serial" not in fixed else fixed["serial"]
    if not raw_serial:
        errors["serial"] = gettext("Enter the meter's serial number.")
    elif len(raw_serial) > MAX_ID or any(ord(c) < 32 or c == "\x7f" for c in raw_serial):
        errors["serial"] = f"A serial is at most {MAX_ID} letters and digits."
    else:
        serial = canonical_serial(raw_serial)
        if not SERIAL_CHARACTERS.match(serial):
            errors["serial"] = gettext("A serial has letters, digits, dots, dashes and underscores only.")
        else:
            parsed["serial"] = serial
    try:
        parsed["dev_eui"] = normalise_dev_eui(_text(values, "dev_eui"))
    except ValueError as error:
        errors["dev_eui"] = str(error)
    utility = fixed.get("utility", _text(values, "utility"))
    if utility not in UTILITIES:
        errors["utility"] = gettext("Choose the utility the meter measures.")
    else:
        parsed["utility"] = utility
    role = fixed.get("role", _text(values, "role") or ("unit" if unit is not None else "bulk"))
    if role not in METER_ROLES:
        errors["role"] = gettext("Choose what the meter measures: a unit's supply, an estate bulk supply or solar generation.")
    elif unit is not None and role not in ROLE_ON_UNIT:
        errors["role"] = gettext("A bulk meter measures the estate's supply: add it on the estate's meters page.")
    elif unit is None and role == "unit":
        errors["role"] = gettext("A unit meter belongs to a unit: add it on the unit's page.")
    elif role == "solar" and utility in UTILITIES and utility != "solar":
        errors["role"] = gettext("A solar generation meter measures solar: choose Solar as its utility.")
    else:
        parsed["role"] = role
    protocol = _text(values, "protocol") or "mqtt_direct"
    if protocol not in PROTOCOLS:
        errors["protocol"] = gettext("Choose how the meter reports its readings.")
    else:
        parsed["protocol"] = protocol
        if protocol == "chirpstack" and "dev_eui" in parsed and parsed["dev_eui"] is None:
            errors["dev_eui"] = gettext("A LoRaWAN (ChirpStack) meter is found by its DevEUI: enter it.")
    parsed["interval_minutes"] = _whole(values, "interval_minutes", 1, MAX_INTERVAL, errors,
                                        "Minutes between readings: a whole number from 1 to 1440, such as 30.")
    if parsed["interval_minutes"] and MAX_INTERVAL % parsed["interval_minutes"]:
        errors["interval_minutes"] = gettext("The interval must divide a day evenly (such as 15, 30 or 60 minutes).")
    parsed["register_digits"] = _whole(values, "register_digits", 1, MAX_REGISTER_DIGITS, errors,
                                       f"Whole digits of the register: 1 to {MAX_REGISTER_DIGITS} (blank: inferred).")
    parsed["bidirectional"] = _flag(values.get("bidirectional"))
    if parsed["bidirectional"] and utility in UTILITIES and utility not in ("electricity", "solar"):
        errors["bidirectional"] = gettext("Only electricity meters are net-metered (they may export solar).")
    # Unique identities, against every estate (ingest matches serials and DevEUIs globally).
    others = select(Meter.id)
    if meter is not None:
        others = others.where(Meter.id != meter.id)
    if "serial" in parsed and "serial" not in errors and session.scalar(
            others.where(Meter.serial == parsed["serial"])) is not None:
        errors["serial"] = (f"Meter {parsed['serial']} is already registered"
                            f"{'' if parsed['serial'] == raw_serial.upper() else f' (as {raw_serial} is written without leading zeros)'}.")
    if parsed.get("dev_eui") and session.scalar(
            others.where(func.lower(Meter.dev_eui) == parsed["dev_eui"])) is not None:
        errors["dev_eui"] = f"DevEUI {parsed['dev_eui'].upper()} is already registered to another meter."
    return parsed


def _check_one_per_utility(session: Session, unit: Unit | None, parsed: dict, errors: dict,
                           ignore: Meter | None = None) -> None:
    """A unit has one attached unit meter per utility (the meter of its pocket)."""
    if unit is None or parsed.get("role") != "unit" or "utility" not in parsed:
        return
    query = select(Meter.serial).where(Meter.unit_id == unit.id, Meter.utility == parsed["utility"],
                                       Meter.role == "unit", Meter.detached_at.is_(None))
    if ignore is not None:
        query = query.where(Meter.id != ignore.id)
    present = session.scalar(query.limit(1))
    if present is not None:
        errors["utility"] = (f"Unit {unit.number} already has a {label('utility', parsed['utility']).lower()} "
                             f"meter ({present}): replace it instead.")


def _raise(errors: dict) -> None:
    """Raise the subclass for the first rule broken (all messages travel in `errors`)."""
    if not errors:
        return
    text = " ".join(errors.values())
    if "already registered" in text:
        raise DuplicateMeter(errors)
    if "replace it instead" in text:
        raise MeterAlreadyOnUnit(errors)
    raise InvalidMeterValues(errors)


def _snapshot(meter: Meter) -> dict:
    return {name: getattr(meter, name) for name in (*FIELDS, "unit_id", "estate_id")}


def _open_pocket(session: Session, unit: Unit | None, meter: Meter) -> None:
    """A unit meter's pocket opens when it is attached (C1: pockets open on demand)."""
    if unit is not None and meter.role == "unit":
        open_wallet(session, unit, (meter.utility,))


def _target(unit_or_estate: Unit | Estate) -> tuple[Estate, Unit | None]:
    if isinstance(unit_or_estate, Unit):
        return unit_or_estate.estate, unit_or_estate
    return unit_or_estate, None


def _build(session: Session, unit_or_estate: Unit | Estate, values: dict, errors: dict, *,
           fixed: dict | None = None, replacing: Meter | None = None) -> Meter | None:
    """Check and build (not add) a meter for a unit or an estate; None when `errors` gained some."""
    estate, unit = _target(unit_or_estate)
    parsed = _parse(session, values, estate=estate, unit=unit, meter=None, errors=errors, fixed=fixed)
    _check_one_per_utility(session, unit, parsed, errors, ignore=replacing)
    if errors:
        return None
    return Meter(estate_id=estate.id, unit_id=unit.id if unit else None, **parsed)


def new_unit_meter_errors(session: Session, estate: Estate, values: dict) -> dict[str, str]:
    """What `add_meter` would refuse in a meter for a unit not made yet (POST /api/v1/units checks first)."""
    errors: dict[str, str] = {}
    _parse(session, values, estate=estate, unit=Unit(estate_id=estate.id), meter=None, errors=errors)
    return errors


# --- actions ------------------------------------------------------------------------------


def add_meter(session: Session, unit_or_estate: Unit | Estate, values: dict, *,
              user_id: int | None = None) -> MeterSaved:
    """Register a meter on a unit (or a bulk meter on an estate), audited; commits once."""
    errors: dict[str, str] = {}
    meter = _build(session, unit_or_estate, values, errors)
    _raise(errors)
    session.add(meter)
    session.flush()
    _open_pocket(session, unit_or_estate if isinstance(unit_or_estate, Unit) else None, meter)
    audit.record(session, "meter.add", meter, new=_snapshot(meter), estate_id=meter.estate_id,
                 actor=_actor(user_id))
    session.commit()
    return MeterSaved(meter, {name: (None, value) for name, value in _snapshot(meter).items()})


def update_meter(session: Session, meter: Meter, values: dict, *, user_id: int | None = None) -> MeterSaved:
    """Edit a meter's details (serial, utility and role only before its first reading), audited; commits once."""
    if meter.detached_at is not None:
        raise MeterHistoryFixed({"serial": gettext("This meter was replaced; it is kept unchanged as the unit's history.")})
    unit = session.get(Unit, meter.unit_id) if meter.unit_id else None
    estate = session.get(Estate, meter.estate_id)
    errors: dict[str, str] = {}
    has_readings = meter.last_reading_at is not None
    fixed = {"serial": meter.serial, "utility": meter.utility, "role": meter.role} if has_readings else None
    if has_readings:
        for name in ("serial", "utility", "role"):
            given = _text(values, name)
            current = getattr(meter, name)
            if given and (canonical_serial(given) if name == "serial" else given) != current:
                errors[name] = (f"The {name} names this meter's readings and charges: it cannot change "
                                "once the meter has readings. Replace the meter instead.")
    parsed = _parse(session, values, estate=estate, unit=unit, meter=meter, errors=errors, fixed=fixed)
    _check_one_per_utility(session, unit, parsed, errors, ignore=meter)
    if any("cannot change" in message for message in errors.values()):
        raise MeterHistoryFixed(errors)
    _raise(errors)
    old, new = audit.changes(meter, parsed)
    if "protocol" in new and "reports_on_boundaries" not in values:
        meter.reports_on_boundaries = meter.protocol != "chirpstack"
    session.flush()
    _open_pocket(session, unit, meter)
    if new:
        audit.record(session, "meter.update", meter, old=old, new=new, estate_id=meter.estate_id,
                     actor=_actor(user_id))
    session.commit()
    return MeterSaved(meter, {name: (old[name], new[name]) for name in new})


def replace_meter(session: Session, old_meter: Meter, closing_register, closing_time, new_values: dict,
                  opening_register, *, user_id: int | None = None, now: datetime | None = None) -> Replacement:
    """Close the old meter's register, put the new meter in its place from its opening register,
    and detach the old one; billing carries on across the swap; audited; commits once.

    `closing_time` is a datetime or the local time as typed (the estate's timezone).
    """
    now = now or utcnow()
    # Lock the old meter: two people replacing it at once must not both succeed.
    session.refresh(old_meter, with_for_update=True)
    estate = session.get(Estate, old_meter.estate_id)
    unit = session.get(Unit, old_meter.unit_id) if old_meter.unit_id else None
    errors: dict[str, str] = {}
    if old_meter.detached_at is not None:
        replaced_by = session.get(Meter, old_meter.replaced_by_meter_id) if old_meter.replaced_by_meter_id else None
        raise ReplacementRefused({"closing_register": f"Meter {old_meter.serial} was already replaced"
                                  f"{f' by {replaced_by.serial}' if replaced_by else ''}."})
    closing = parse_register(closing_register, "closing_register", errors)
    at = parse_local_time(closing_time, estate, "closing_time", errors)
    opening = parse_register(opening_register, "opening_register", errors)
    if at is not None:
        refusal = validation.timestamp_refusal(at, now)
        if refusal:
            errors["closing_time"] = ("The closing time cannot be in the future." if at > now
                                      else f"The closing time is more than {validation.MAX_AGE.days} days ago.")
        elif old_meter.last_reading_at is not None and at < old_meter.last_reading_at:
            errors["closing_time"] = (f"The meter's last reading was at {_local(old_meter.last_reading_at, estate)}: "
                                      "the closing reading must be at that time or later.")
        elif old_meter.last_reading_at is not None and at == old_meter.last_reading_at \
                and closing is not None and closing != old_meter.last_register:
            errors["closing_register"] = (f"The reading at that time was {_plain(old_meter.last_register)}: "
                                          "enter it, or a later time.")
    if closing is not None and old_meter.last_register is not None and closing < old_meter.last_register \
            and not old_meter.bidirectional:
        errors["closing_register"] = (f"The closing register {_plain(closing)} is below the last reading, "
                                      f"{_plain(old_meter.last_register)} at {_local(old_meter.last_reading_at, estate)}: "
                                      "a register never goes backwards.")
    fixed = {"utility": old_meter.utility, "role": old_meter.role}
    new_meter = _build(session, unit if unit is not None else estate, new_values, errors, fixed=fixed,
                       replacing=old_meter)
    if at is not None and "closing_time" not in errors:
        for meter, who in ((old_meter, "old"), (new_meter, "new")):
            if meter is None:
                continue
            interval = meter.interval_minutes if meter.reports_on_boundaries else None
            if validation.interval_refusal(at, interval):
                errors["closing_time"] = (f"The {who} meter reports every {interval} minutes on the clock: "
                                          f"choose a time on its interval (such as {_on_interval(at, interval, estate)}).")
    if errors:
        raise ReplacementRefused(errors)
    closing_report = ingest(session, [_reading(old_meter, closing, at)], now=now, keep_dead_letters=False)
    if closing_report.dead_letters:
        session.rollback()
        raise ReplacementRefused({"closing_register": f"The closing reading was refused: {closing_report.dead_letters[0]}."})
    session.add(new_meter)
    session.flush()
    old_before = {"detached_at": None, "replaced_by_meter_id": None}
    old_meter.detached_at, old_meter.replaced_by_meter_id = at, new_meter.id
    session.flush()
    opening_report = ingest(session, [_reading(new_meter, opening, at)], now=now, keep_dead_letters=False)
    if opening_report.dead_letters:
        session.rollback()
        raise ReplacementRefused({"opening_register": f"The opening reading was refused: {opening_report.dead_letters[0]}."})
    _open_pocket(session, unit, new_meter)
    actor = _actor(user_id)
    audit.record(session, "meter.add", new_meter, new={**_snapshot(new_meter), "replaces": old_meter.serial,
                                                       "opening_register": opening, "opening_at": at},
                 estate_id=estate.id, actor=actor)
    audit.record(session, "meter.replace", old_meter, estate_id=estate.id, actor=actor,
                 old={**old_before, "last_register": old_meter.last_register},
                 new={"detached_at": at, "replaced_by_meter_id": new_meter.id, "replaced_by": new_meter.serial,
                      "closing_register": closing, "closing_at": at, "opening_register": opening})
    if unit is not None and new_meter.role == "unit":
        # The new meter starts in the state the pocket's balance calls for (credit control on).
        pocket = open_wallet(session, unit, (new_meter.utility,)).pocket(new_meter.utility)
        credit_control.after_pocket_change(session, [pocket.id])
    session.commit()
    return Replacement(old_meter, new_meter, closing_report, opening_report)


# --- small helpers ------------------------------------------------------------------------


def _reading(meter: Meter, register: Decimal, at: datetime) -> Message:
    """A manual reading in the HTTP gateway's JSON, so it takes the pipeline like any other."""
    unit = UTILITY_UNITS[meter.utility].lower()
    body = {"meter": meter.serial, "register": f"{format(register, 'f')} {unit}", "time": at.isoformat()}
    return Message(HTTP_TOPIC, json.dumps(body).encode())


def _plain(value: Decimal | None) -> str:
    return "—" if value is None else validation._plain(Decimal(value))


def _local(moment: datetime | None, estate: Estate) -> str:
    return "—" if moment is None else moment.astimezone(estate.tz).strftime("%d %b %Y %H:%M")


def _on_interval(moment: datetime, interval: int, estate: Estate) -> str:
    """The interval boundary at or before `moment`, as a local clock time."""
    minutes = moment.hour * 60 + moment.minute
    boundary = moment.replace(second=0, microsecond=0) - timedelta(minutes=minutes % interval)
    return boundary.astimezone(estate.tz).strftime("%H:%M")


def _actor(user_id: int | None) -> audit.Actor | None:
    """The request's actor (set by the app), or the user named by `user_id` outside a request."""
    current = audit.current_actor.get()
    if user_id is None or current.user_id == user_id:
        return None
    return audit.Actor(f"user:{user_id}", user_id)


# --- reads --------------------------------------------------------------------------------

AGES = {"1h": _l("Within the last hour"), "24h": _l("Within the last day"), "stale": _l("More than a day ago"),
        "never": _l("Never")}
STATES = {"attached": _l("In service"), "detached": _l("Replaced")}
LIST_LIMIT = 1000


@dataclass(frozen=True)
class MeterFilters:
    """The meters list's search and filters, as given (unknown values are ignored, not errors)."""

    q: str = ""
    utility: str = ""
    role: str = ""
    protocol: str = ""
    state: str = ""
    age: str = ""

    @classmethod
    def from_args(cls, args) -> MeterFilters:
        def pick(name: str, allowed) -> str:
            value = str(args.get(name, "") or "")[:40]
            return value if value in allowed else ""
        return cls(q=str(args.get("q", "") or "").strip()[:64], utility=pick("utility", UTILITIES),
                   role=pick("role", METER_ROLES), protocol=pick("protocol", PROTOCOLS),
                   state=pick("state", STATES), age=pick("age", AGES))

    def query_args(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v}


@dataclass(frozen=True)
class MeterRow:
    """One meter in a list: the meter, its unit number and the meter that replaced it."""

    meter: Meter
    unit_number: str | None
    replaced_by: str | None
    replaces: str | None = None

    @property
    def state(self) -> str:
        return "detached" if self.meter.detached_at is not None else "attached"


def estate_meters(session: Session, estate: Estate, filters: MeterFilters, *,
                  now: datetime | None = None) -> list[MeterRow]:
    """The estate's meters matching the filters, by unit then utility (at most LIST_LIMIT)."""
    from sqlalchemy import or_
    from sqlalchemy.orm import aliased

    now = now or utcnow()
    successor = aliased(Meter)
    query = (select(Meter, Unit.number, successor.serial).outerjoin(Unit, Unit.id == Meter.unit_id)
             .outerjoin(successor, successor.id == Meter.replaced_by_meter_id)
             .where(Meter.estate_id == estate.id))
    if filters.q:
        pattern = "%" + filters.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        eui = EUI_SEPARATORS.sub("", filters.q).lower()
        canonical = canonical_serial(filters.q)  # "000023022673" finds 23022673
        query = query.where(or_(Meter.serial.ilike(pattern, escape="\\"),
                                *([Meter.serial.ilike(f"%{canonical}%")]
                                  if SERIAL_CHARACTERS.match(canonical) and "_" not in canonical else []),
                                Unit.number.ilike(pattern, escape="\\"),
                                *([Meter.dev_eui.ilike(f"%{eui}%")] if eui.isalnum() and eui.isascii() else [])))
    for name in ("utility", "role", "protocol"):
        if getattr(filters, name):
            query = query.where(getattr(Meter, name) == getattr(filters, name))
    if filters.state == "attached":
        query = query.where(Meter.detached_at.is_(None))
    elif filters.state == "detached":
        query = query.where(Meter.detached_at.is_not(None))
    if filters.age == "never":
        query = query.where(Meter.last_reading_at.is_(None))
    elif filters.age in ("1h", "24h"):
        query = query.where(Meter.last_reading_at >= now - timedelta(hours=1 if filters.age == "1h" else 24))
    elif filters.age == "stale":
        query = query.where(Meter.last_reading_at < now - timedelta(hours=24))
    rows = session.execute(query.order_by(Unit.number.is_(None), Unit.number, Meter.utility, Meter.id)
                           .limit(LIST_LIMIT)).all()
    return [MeterRow(meter, number, replaced_by) for meter, number, replaced_by in rows]


def unit_meters(session: Session, unit: Unit) -> list[MeterRow]:
    """The unit's meters, in service first, each with the meter it replaced or was replaced by."""
    rows = session.scalars(select(Meter).where(Meter.unit_id == unit.id)
                           .order_by(Meter.detached_at.is_not(None), Meter.utility, Meter.id)).all()
    serials = {m.id: m.serial for m in rows}
    replaces = {m.replaced_by_meter_id: m.serial for m in rows if m.replaced_by_meter_id}
    return [MeterRow(m, unit.number, serials.get(m.replaced_by_meter_id), replaces.get(m.id)) for m in rows]


def meter_of(session: Session, meter_id: int, *, unit: Unit | None = None, estate: Estate | None = None) -> Meter | None:
    """The meter if it is on this unit (or in this estate), else None: ids from URLs are checked."""
    from app.routing import INTEGER_MAX

    if not 0 < meter_id <= INTEGER_MAX:
        return None
    meter = session.get(Meter, meter_id)
    if meter is None or (unit is not None and meter.unit_id != unit.id) \
            or (estate is not None and meter.estate_id != estate.id):
        return None
    return meter
