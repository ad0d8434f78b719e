"""Periods (months written `YYYY-MM`): parsing and checking a month from outside, and month arithmetic.

Local months (an estate's month in its timezone), their UTC bounds, "months back" and the
month before or after all live here, so every package counts months the same way.

A period that reaches a query or `datetime()` unchecked fails there with a 500 (`9999-12`
has no following month `datetime` can hold; a NUL byte is refused by PostgreSQL), so every
view that takes a period parses it here first; the app turns `InvalidPeriod` into a 400.
"""
import re
from datetime import UTC, date, datetime, tzinfo
from zoneinfo import ZoneInfo

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


def is_period(text: str | None) -> bool:
    """Return whether the text is a valid `YYYY-MM` period."""
    try:
        parse_period(text)
    except InvalidPeriod:
        return False
    return True


# --- month arithmetic: periods are made from valid months, so these do not check again -----


def _zone(timezone: str | tzinfo) -> tzinfo:
    return ZoneInfo(timezone) if isinstance(timezone, str) else timezone


def shift_month(year: int, month: int, months: int) -> tuple[int, int]:
    """Return the (year, month) `months` after the given month (before it when negative)."""
    index = year * 12 + month - 1 + months
    return index // 12, index % 12 + 1


def shift_period(period: str, months: int) -> str:
    """Return the `YYYY-MM` period `months` after this one (before it when negative)."""
    year, month = shift_month(int(period[:4]), int(period[5:7]), months)
    return f"{year:04d}-{month:02d}"


def previous_period(period: str) -> str:
    """Return the month before `YYYY-MM`."""
    return shift_period(period, -1)


def next_period(period: str) -> str:
    """Return the month after `YYYY-MM`."""
    return shift_period(period, 1)


def months_back(period: str, count: int) -> list[str]:
    """Return the `count` periods ending with `period`, oldest first."""
    return [shift_period(period, offset) for offset in range(1 - count, 1)]


def add_months(day: date, months: int) -> date:
    """Return the first day of the month `months` after the month `day` falls in."""
    return date(*shift_month(day.year, day.month, months), 1)


def first_day(period: str) -> date:
    """Return the first day of a `YYYY-MM` period, or raise InvalidPeriod."""
    return date(*parse_period(period), 1)


def period_of(moment: datetime, timezone: str | tzinfo) -> str:
    """Return the `YYYY-MM` period a moment falls in, in the given timezone."""
    return moment.astimezone(_zone(timezone)).strftime("%Y-%m")


def current_period(timezone: str | tzinfo, now: datetime | None = None) -> str:
    """Return this month (`YYYY-MM`) in the given timezone."""
    return period_of(now or datetime.now(UTC), timezone)


def last_complete_period(timezone: str | tzinfo, now: datetime | None = None) -> str:
    """Return the most recent month that has ended in the given timezone."""
    return previous_period(current_period(timezone, now))


def local_month_bounds(year: int, month: int, timezone: str | tzinfo) -> tuple[datetime, datetime]:
    """Return the UTC instants where a local calendar month starts and the next one starts."""
    tz = _zone(timezone)
    following = shift_month(year, month, 1)
    return (datetime(year, month, 1, tzinfo=tz).astimezone(UTC),
            datetime(*following, 1, tzinfo=tz).astimezone(UTC))


def month_bounds(period: str, timezone: str | tzinfo) -> tuple[datetime, datetime]:
    """Return the UTC instants where a local `YYYY-MM` month starts and ends, or raise InvalidPeriod."""
    return local_month_bounds(*parse_period(period), timezone)


def month_start(moment: datetime, timezone: str | tzinfo) -> datetime:
    """Return the start of the local month a moment falls in, as a UTC instant."""
    local = moment.astimezone(_zone(timezone))
    return local_month_bounds(local.year, local.month, timezone)[0]
