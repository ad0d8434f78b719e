"""Periods (months written `YYYY-MM`): the one place a month from outside is parsed and checked.

A period that reaches a query or `datetime()` unchecked fails there with a 500 (`9999-12`
has no following month `datetime` can hold; a NUL byte is refused by PostgreSQL), so every
view that takes a period parses it here first; the app turns `InvalidPeriod` into a 400.
"""
import re

FIRST_YEAR = 2000  # before any estate's ledger
LAST_YEAR = 2100   # far enough ahead for any plan or levy schedule
_PERIOD = re.compile(r"(\d{4})-(\d{2})", re.ASCII)  # ASCII: int() would read other scripts' digits


class InvalidPeriod(ValueError):
    """The text is not a month written YYYY-MM between FIRST_YEAR and LAST_YEAR."""


def parse_period(text: str | None) -> tuple[int, int]:
    """Return (year, month) of a `YYYY-MM` period, or raise InvalidPeriod saying why."""
    found = _PERIOD.fullmatch(text or "")  # fullmatch: "$" would let a trailing newline through
    if found is None:
        raise InvalidPeriod("a month is written YYYY-MM, for example 2026-03")
    year, month = int(found.group(1)), int(found.group(2))
    if not 1 <= month <= 12:
        raise InvalidPeriod(f"{text} has no month {month:02d}; months run 01 to 12")
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise InvalidPeriod(f"{text} is outside the years {FIRST_YEAR} to {LAST_YEAR}")
    return year, month


def checked_period(text: str | None) -> str:
    """Return the period unchanged when it is a valid `YYYY-MM`, else raise InvalidPeriod."""
    parse_period(text)
    return text
