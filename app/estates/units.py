"""Units of an estate: create and edit them (number, floor area, address, GPS, account number)
and change their occupancy; each action audited with old and new values and committed once.

Values come as a form sends them (text) and are checked here: the unit number is unique
within the estate (ignoring capitals, since payment references ignore them), the floor
area is a number of m² of at least 0, a GPS position is both a latitude (-90..90) and a
longitude (-180..180) or neither. Account numbers come from the estate's pattern
(app/estates/account_numbers.py); staff and agents may set one by hand (an operator's
existing numbers), unique across estates.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import audit
from app.estates import account_numbers
from app.estates.status import EstateRuleError, set_occupancy
from app.models import Estate, OccupancyChange, Unit, User
from app.models.estate import OCCUPANCY_STATUSES
from app.money import MoneyError, to_decimal

NUMBER_MAX = Unit.__table__.c.number.type.length
ADDRESS_MAX = 500
FLOOR_AREA_MAX = Decimal("1000000")
FIELDS = ("number", "floor_area_m2", "address", "latitude", "longitude")


class UnitError(ValueError):
    """A unit change the rules refuse; `errors` maps a form field to its message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


class InvalidUnitValues(UnitError):
    """A value is missing, not a number, out of range or unreadable."""


class UnitNumberTaken(UnitError):
    """Another unit of the estate has this number."""


class AccountNumberTaken(UnitError):
    """Another unit (in any estate) has this account number."""


class BadOccupancy(UnitError):
    """The occupancy status is not one the estate tracks."""


@dataclass(frozen=True)
class UnitChange:
    unit: Unit
    changed: dict[str, tuple[Any, Any]]  # field -> (old, new); empty when nothing changed


def create_unit(session: Session, estate: Estate, values: Mapping[str, Any], *,
                user_id: int | None = None) -> UnitChange:
    """Add a unit with its starting occupancy and an account number from the pattern; commits once."""
    clean = _checked(session, estate, values, unit=None, with_status=True)
    status = clean.pop("occupancy_status")
    unit = Unit(estate_id=estate.id, occupancy_status=status, **clean)
    session.add(unit)
    session.flush()
    session.add(OccupancyChange(unit_id=unit.id, status=status, changed_by_user_id=user_id))
    try:
        account_numbers.assign_account_numbers(session, estate, [unit])
    except account_numbers.AccountNumberError as error:
        raise UnitError({"account_number": f"No account number could be made: {error}"}) from None
    new = {**clean, "occupancy_status": status, "account_number": unit.account_number}
    audit.record(session, "unit.created", unit, estate_id=estate.id, new=new)
    session.commit()
    return UnitChange(unit, {name: (None, value) for name, value in new.items()})


def update_unit(session: Session, unit: Unit, values: Mapping[str, Any], *,
                user_id: int | None = None) -> UnitChange:
    """Change a unit's number, floor area, address, GPS position or account number; commits once."""
    estate = unit.estate
    clean = _checked(session, estate, values, unit=unit, with_status=False)
    old, new = audit.changes(unit, clean)
    if new:
        audit.record(session, "unit.updated", unit, estate_id=estate.id, old=old, new=new)
    session.commit()
    return UnitChange(unit, {name: (old[name], new[name]) for name in new})


def change_occupancy(session: Session, unit: Unit, status: str, *, user_id: int | None = None) -> bool:
    """Set a unit's occupancy (history kept, audited); False when it was already so; commits once."""
    try:
        changed = set_occupancy(session, unit, status, user_id=user_id)
    except EstateRuleError:
        raise BadOccupancy({"status": _STATUS_MESSAGE}) from None
    session.commit()
    return changed


def occupancy_history(session: Session, unit: Unit, limit: int = 50) -> list[tuple[OccupancyChange, str | None]]:
    """The unit's occupancy changes, newest first, each with the email of who made it (None: the system)."""
    return [tuple(row) for row in session.execute(
        select(OccupancyChange, User.email).outerjoin(User, User.id == OccupancyChange.changed_by_user_id)
        .where(OccupancyChange.unit_id == unit.id)
        .order_by(OccupancyChange.changed_at.desc(), OccupancyChange.id.desc()).limit(limit))]


# --- checking values ----------------------------------------------------------------------

_STATUS_MESSAGE = "Choose occupied, vacant or maintenance."


def _checked(session: Session, estate: Estate, values: Mapping[str, Any], *, unit: Unit | None,
             with_status: bool) -> dict[str, Any]:
    """The values as the unit stores them; raise the UnitError subclass of the first broken rule kind."""
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    number = _text(values.get("number"))
    if not number:
        errors["number"] = "Enter the unit number."
    elif len(number) > NUMBER_MAX:
        errors["number"] = f"A unit number has at most {NUMBER_MAX} characters."
    elif not number.isprintable():
        errors["number"] = "A unit number is one line of letters, digits and punctuation."
    else:
        clean["number"] = number
    clean["floor_area_m2"] = _decimal(values.get("floor_area_m2"), "floor_area_m2", errors,
                                      "Enter the floor area in m² as a number, like 84 or 84.5.")
    area = clean["floor_area_m2"]
    if area is not None and area < 0:
        errors["floor_area_m2"] = "The floor area cannot be negative."
    elif area is not None and area > FLOOR_AREA_MAX:
        errors["floor_area_m2"] = "The floor area is at most 1 000 000 m²."
    elif area is not None and area != area.quantize(Decimal("0.01")):
        errors["floor_area_m2"] = "Give the floor area to at most 2 decimals."
    address = _text(values.get("address"), keep_lines=True)
    if address and len(address) > ADDRESS_MAX:
        errors["address"] = f"An address has at most {ADDRESS_MAX} characters."
    elif address and not all(line.isprintable() for line in address.splitlines()):
        errors["address"] = "The address holds a character that cannot be stored."
    clean["address"] = address or None
    clean["latitude"] = _degrees(values.get("latitude"), "latitude", 90, errors)
    clean["longitude"] = _degrees(values.get("longitude"), "longitude", 180, errors)
    if "latitude" not in errors and "longitude" not in errors:
        if clean["latitude"] is not None and clean["longitude"] is None:
            errors["longitude"] = "Enter the longitude too, or clear the latitude."
        elif clean["longitude"] is not None and clean["latitude"] is None:
            errors["latitude"] = "Enter the latitude too, or clear the longitude."
    if with_status:
        status = _text(values.get("occupancy_status")) or "vacant"
        if status not in OCCUPANCY_STATUSES:
            errors["occupancy_status"] = _STATUS_MESSAGE
        clean["occupancy_status"] = status
    if unit is not None and "account_number" in values:
        account = account_numbers.normalise(_text(values.get("account_number")))
        if not account:
            if unit.account_number:
                errors["account_number"] = "A unit keeps its account number once it has one: payers quote it."
        elif not account_numbers.ACCOUNT_NUMBER.fullmatch(account):
            errors["account_number"] = (f"An account number is letters, digits, - and / "
                                        f"(at most {account_numbers.MAX_LENGTH}).")
        else:
            clean["account_number"] = account
    if errors:
        raise InvalidUnitValues(errors)
    # The rules that need the database, once every value reads well.
    if _number_taken(session, estate, clean["number"], unit):
        raise UnitNumberTaken({"number": f"{estate.name} already has a unit {clean['number']}."})
    account = clean.get("account_number")
    if account and account != (unit.account_number if unit else None) and session.scalar(
            select(Unit.id).where(Unit.account_number == account)):
        raise AccountNumberTaken({"account_number": f"Account number {account} is already another unit's."})
    return clean


def _number_taken(session: Session, estate: Estate, number: str, unit: Unit | None) -> bool:
    query = select(Unit.id).where(Unit.estate_id == estate.id, func.upper(Unit.number) == number.upper())
    if unit is not None and unit.id is not None:
        query = query.where(Unit.id != unit.id)
    return session.scalar(query.limit(1)) is not None


def _text(value: Any, *, keep_lines: bool = False) -> str:
    """A form value as stripped text ("" for anything missing or not text)."""
    if value is None:
        return ""
    text = str(value)
    if keep_lines:
        return "\n".join(line.strip() for line in text.strip().splitlines()).strip()
    return " ".join(text.split())


def _decimal(value: Any, field: str, errors: dict[str, str], message: str) -> Decimal | None:
    if isinstance(value, Decimal):
        return value if value.is_finite() else _refuse(errors, field, message)
    text = _text(value)
    if not text:
        return None
    if len(text) > 40:
        return _refuse(errors, field, message)
    try:
        return to_decimal(text)
    except MoneyError:
        return _refuse(errors, field, message)


def _degrees(value: Any, field: str, bound: int, errors: dict[str, str]) -> Decimal | None:
    example = "-29.316700" if field == "latitude" else "27.483300"
    found = _decimal(value, field, errors, f"Enter the {field} in decimal degrees, like {example}.")
    if found is None:
        return None
    if not -bound <= found <= bound:
        errors[field] = f"The {field} is between -{bound} and {bound} degrees."
        return None
    return found.quantize(Decimal("0.000001"))


def _refuse(errors: dict[str, str], field: str, message: str) -> None:
    errors[field] = message
    return None
