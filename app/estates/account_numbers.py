"""Unit account numbers: what payers quote in an SMS or EFT reference (1PWR's `0045MAK`).

A unit's number is made from its estate's pattern, the setting `account_number_pattern`
(default `{seq:04d}{code}`), with two placeholders:

- `{seq}`: the unit's place in the estate's sequence (1, 2, 3 ...; required); a width such
  as `{seq:04d}` pads it with zeros (0045);
- `{code}`: the estate's code in capitals, letters and digits only (MAK).

Anything else in the pattern is written as it is and may be letters, digits, `-` and `/`
(the characters an M-PESA reference carries). Numbers are stored in capitals without
spaces and are unique across all estates, because a payment names only the account: a
number another estate already holds is skipped and the sequence moves on. The sequence
continues from the estate's highest `account_sequence`, also after the pattern changes.
"""
from __future__ import annotations

import re
import string
from collections.abc import Iterable, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from flask_babel import gettext
from app import audit
from app.estates.settings_catalog import setting_default
from app.models import Estate, Unit
from app.settings import get_setting

PATTERN_SETTING = "account_number_pattern"
DEFAULT_PATTERN = setting_default(PATTERN_SETTING)
MAX_LENGTH = Unit.__table__.c.account_number.type.length
MAX_SEQUENCE = 2**31 - 1  # account_sequence is an integer column
_LITERAL = re.compile(r"[A-Za-z0-9/-]*")
_SEQ_SPEC = re.compile(r"(0?[1-9][0-9]?)?d?")  # "", "d", "4d", "04d", "012d"
ACCOUNT_NUMBER = re.compile(r"[A-Z0-9/-]{1,%d}" % MAX_LENGTH)
_CHUNK = 500  # candidate numbers checked against the database per query


class AccountNumberError(ValueError):
    """An account number or pattern the rules refuse; `errors` maps a form field to its message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


class BadPattern(AccountNumberError):
    """The estate's account number pattern cannot make numbers."""


def check_pattern(pattern: object, field: str = PATTERN_SETTING) -> str:
    """Return the pattern when it can make account numbers; raise BadPattern saying why."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise BadPattern({field: gettext("Enter a pattern, such as {seq:04d}{code}.")})
    pattern = pattern.strip()
    try:
        parts = list(string.Formatter().parse(pattern))
    except ValueError:
        raise BadPattern({field: gettext("Write placeholders in single braces, such as {seq:04d}{code}.")}) from None
    seen = set()
    for literal, name, spec, conversion in parts:
        if not _LITERAL.fullmatch(literal):
            raise BadPattern({field: gettext("Besides placeholders a pattern may hold only letters, digits, - and /.")})
        if name is None:
            continue
        if name not in ("seq", "code") or conversion is not None:
            raise BadPattern({field: "The placeholders are {seq} (the sequence, e.g. {seq:04d}) and {code} "
                                     "(the estate code)."})
        if name == "code" and spec:
            raise BadPattern({field: gettext("{code} takes no width; write it as {code}.")})
        if name == "seq" and not _SEQ_SPEC.fullmatch(spec or ""):
            raise BadPattern({field: gettext("Give {seq} a width such as {seq:04d} (4 digits, zero-padded), or none.")})
        seen.add(name)
    if "seq" not in seen:
        raise BadPattern({field: gettext("The pattern must contain {seq}, so every unit gets its own number.")})
    if len(render(pattern, 1, "")) > MAX_LENGTH:
        raise BadPattern({field: f"The pattern makes numbers longer than {MAX_LENGTH} characters."})
    return pattern


def estate_code(estate: Estate) -> str:
    """The estate code as it appears in account numbers: capitals and digits only."""
    return re.sub(r"[^A-Z0-9]", "", (estate.code or "").upper())


def render(pattern: str, sequence: int, code: str) -> str:
    """The account number a checked pattern makes for one place in the sequence."""
    return normalise(pattern.format(seq=sequence, code=code))


def normalise(reference: str | None) -> str:
    """An account number or payment reference as stored: capitals, no spaces ('0045 mak' -> '0045MAK')."""
    return re.sub(r"\s+", "", reference or "").upper()


def estate_pattern(session: Session, estate: Estate) -> str:
    """The estate's checked pattern (its setting, else the global one, else the default)."""
    return check_pattern(get_setting(session, PATTERN_SETTING, estate.id, DEFAULT_PATTERN))


def preview(pattern: str, estate: Estate, sequences: Sequence[int] = (1, 2, 45)) -> list[str]:
    """Examples of the numbers a checked pattern makes, for a settings page's help line."""
    return [render(pattern, seq, estate_code(estate)) for seq in sequences]


def assign_account_numbers(session: Session, estate: Estate, units: Iterable[Unit]) -> list[Unit]:
    """Give each of the estate's units that has none the next account number; audited; the caller commits.

    Returns the units that got a number, in the order given. Units may be new (added to
    the session, not yet flushed), as an import makes them. The estate row is locked
    (on PostgreSQL) so two assignments at once cannot take the same place in the sequence.
    """
    wanted = [unit for unit in units if not unit.account_number]
    if not wanted:
        return []
    session.flush()  # new units get their ids (for the audit) and their estate_id
    for unit in wanted:
        if unit.estate_id != estate.id:
            raise AccountNumberError({"unit": f"unit {unit.number} is not in {estate.name}"})
    for unit, (seq, number) in zip(wanted, next_account_numbers(session, estate, len(wanted)), strict=True):
        unit.account_sequence, unit.account_number = seq, number
        audit.record(session, "unit.account_number", unit, estate_id=estate.id,
                     old={"account_number": None}, new={"account_number": number})
    session.flush()
    return wanted


def next_account_numbers(session: Session, estate: Estate, count: int) -> list[tuple[int, str]]:
    """The estate's next `count` free (sequence, account number) places, for units about to be made.

    Locks the estate row (on PostgreSQL) until the caller commits, so two callers cannot take
    the same places; a number another estate (or a hand-set one) holds is skipped.
    """
    if count <= 0:
        return []
    pattern = estate_pattern(session, estate)
    code = estate_code(estate)
    session.execute(select(Estate.id).where(Estate.id == estate.id).with_for_update())
    sequence = session.scalar(select(func.max(Unit.account_sequence)).where(Unit.estate_id == estate.id)) or 0
    places: list[tuple[int, str]] = []
    while len(places) < count:
        candidates: list[tuple[int, str]] = []
        while len(candidates) < min(count - len(places), _CHUNK):
            sequence += 1
            if sequence > MAX_SEQUENCE:
                raise AccountNumberError({PATTERN_SETTING: gettext("The estate's account number sequence is exhausted.")})
            number = render(pattern, sequence, code)
            if not ACCOUNT_NUMBER.fullmatch(number):
                raise BadPattern({PATTERN_SETTING: f"The pattern makes {number[:40]!r}, which is not an account "
                                                   f"number (letters, digits, - and /, at most {MAX_LENGTH})."})
            candidates.append((sequence, number))
        taken = set(session.scalars(select(Unit.account_number).where(
            Unit.account_number.in_([number for _, number in candidates]))))
        places += [(seq, number) for seq, number in candidates if number not in taken]
    return places


def unit_by_account_number(session: Session, reference: str | None) -> Unit | None:
    """The unit whose account number the reference is (capitals or not, spaces ignored)."""
    wanted = normalise(reference)
    if not wanted or len(wanted) > MAX_LENGTH:
        return None
    return session.scalar(select(Unit).where(Unit.account_number == wanted))


def give_missing_account_numbers(session: Session, estate: Estate, *, user_id: int | None = None) -> int:
    """Give every unit of the estate that has no account number one (the backfill); commits once."""
    from app.estates.queries import units_without_account_number

    given = assign_account_numbers(session, estate, units_without_account_number(session, estate))
    if given:
        audit.record(session, "estate.account_numbers", estate, estate_id=estate.id,
                     new={"units": len(given), "first": given[0].account_number, "last": given[-1].account_number})
    session.commit()
    return len(given)
