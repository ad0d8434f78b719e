"""Validation, estimation and editing rules (VEE, M3) as pure functions over plain values.

A rule that refuses returns the reason (the message goes to the dead letters); a rule that
flags returns the alert text (the reading is kept and billed, the meter gets an alert).

Registers that may legitimately fall (`register_refusal(..., meter=...)`, `consumption_between`):
- Rollover: a register wraps at its size (`meter.register_digits` whole digits; unset, the
  previous reading's own digit count), so 99999.999 then 00000.123 is 0.124 consumed, not
  tamper. Only a small wrap counts (at most ROLLOVER_MAX_SHARE of the register's range):
  150 then 100 would be a 99,950 kWh "wrap" and stays a rollback. Every accepted wrap raises
  an informational "rollover" alert (`rollover_flag`): a replaced meter starting again near
  zero looks the same to the register.
- Net metering: a bidirectional meter (solar, M3/C5) nets exports against imports, so its
  register may fall; the fall is exported energy, credited at the tariff's solar rate.
Out-of-order (late) readings (`late_register_refusal`) must fit between their neighbours:
each step valid as above and the two parts adding up to what the later reading consumed, so a
late reading inside a wrap, or on a net-metered meter below or above both, is accepted.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

MAX_FUTURE = timedelta(minutes=10)  # meter clocks drift; beyond this the timestamp is wrong
MAX_AGE = timedelta(days=400)  # older than this is a replay of archived data or a dead clock
SPIKE_FACTOR = Decimal(10)  # this many times the meter's usual hourly use is a spike
SPIKE_FLOOR_PER_HOUR = Decimal("1")  # below this much per hour nothing is a spike
GAP_INTERVALS = 3  # this many missed intervals (or hours, without an interval) is a gap
ROLLOVER_MAX_SHARE = Decimal("0.01")  # a wrap bigger than 1% of the register's range is a rollback
FROZEN_INTERVALS = 6  # this many intervals (or hours) on one register value while occupied is frozen


def _plain(value: Decimal) -> str:
    """A register as people write it: 99990, not 99990.000000 (the column's scale)."""
    return format(value.normalize(), "f") if value == value.to_integral_value() else format(value, "f").rstrip("0")


def timestamp_refusal(taken_at: datetime, now: datetime) -> str | None:
    """Refuse readings stamped in the future or too far in the past."""
    if taken_at > now + MAX_FUTURE:
        return f"timestamp {taken_at.isoformat()} is in the future"
    if taken_at < now - MAX_AGE:
        return f"timestamp {taken_at.isoformat()} is older than {MAX_AGE.days} days"
    return None


def interval_refusal(taken_at: datetime, interval_minutes: int | None) -> str | None:
    """Interval meters report on their boundaries only (:00 and :30 for half-hourly)."""
    if not interval_minutes:
        return None
    minutes = taken_at.hour * 60 + taken_at.minute
    if minutes % interval_minutes or taken_at.second or taken_at.microsecond:
        return f"timestamp {taken_at.isoformat()} is off the meter's {interval_minutes}-minute interval"
    return None


def register_refusal(previous: Decimal | None, register: Decimal,
                     following: Decimal | None = None, *, meter=None) -> str | None:
    """A register never goes backwards: below its predecessor or above its successor is tamper.

    With `meter`, a wrap at the register's size and a net-metered meter's export are allowed.
    """
    if previous is not None and register < previous:
        if meter is not None and (meter.bidirectional or rollover(previous, register, meter.register_digits)):
            return None
        return f"register went backwards from {_plain(previous)} to {_plain(register)} (rollback or tamper)"
    if following is not None and register > following:
        return f"register {_plain(register)} is above the later reading's {_plain(following)} (rollback or tamper)"
    return None


def late_register_refusal(previous: Decimal | None, register: Decimal, following: Decimal | None,
                          following_consumption: Decimal | None, *, meter=None) -> str | None:
    """A reading older than the meter's latest must split the span it falls in, not change it.

    `following_consumption` is what the later reading was billed for (None when it was the
    meter's first). With `meter` each step may wrap, or fall on a net-metered meter.
    """
    refusal = register_refusal(previous, register, meter=meter) if previous is not None else None
    if refusal:
        return refusal
    if following is not None and register_refusal(register, following, meter=meter):
        return f"register {_plain(register)} is above the later reading's {_plain(following)} (rollback or tamper)"
    if None not in (previous, following, following_consumption):
        parts = consumption_between(previous, register, meter) + consumption_between(register, following, meter)
        if parts != following_consumption:
            return (f"register {_plain(register)} does not fit between {_plain(previous)} and {_plain(following)}: "
                    f"{_plain(parts)} against the {_plain(following_consumption)} already counted (rollback or tamper)")
    return None


def spike_flag(consumption: Decimal, span: timedelta, usual_per_hour: Decimal | None) -> str | None:
    """Flag consumption far above the meter's usual hourly use."""
    hours = Decimal(span.total_seconds()) / 3600
    if usual_per_hour is None or hours <= 0:
        return None
    per_hour = consumption / hours
    limit = max(usual_per_hour * SPIKE_FACTOR, SPIKE_FLOOR_PER_HOUR)
    if per_hour > limit:
        return f"{per_hour:.3f} per hour is above {limit:.3f} ({SPIKE_FACTOR}x the usual)"
    return None


def gap_flag(previous_at: datetime | None, taken_at: datetime, interval_minutes: int | None) -> str | None:
    """Flag a reading that follows a silence of several intervals."""
    if previous_at is None:
        return None
    step = timedelta(minutes=interval_minutes or 60)
    if taken_at - previous_at > step * GAP_INTERVALS:
        return f"no readings between {previous_at.isoformat()} and {taken_at.isoformat()}"
    return None


def register_modulus(previous: Decimal, digits: int | None) -> Decimal:
    """Where a register wraps: 10**digits, or past the previous reading's own whole digits."""
    if digits:
        return Decimal(10) ** digits
    return Decimal(10) ** max(len(str(int(previous))), 1)


def rollover(previous: Decimal, register: Decimal, digits: int | None) -> Decimal | None:
    """The consumption across a register wrap, or None when the fall is no plausible wrap."""
    if register >= previous:
        return None
    modulus = register_modulus(previous, digits)
    if previous >= modulus or register < 0:
        return None  # a register cannot show more digits than it has
    wrapped = modulus - previous + register
    return wrapped if wrapped <= modulus * ROLLOVER_MAX_SHARE else None


def consumption_between(previous: Decimal, register: Decimal, meter=None) -> Decimal:
    """Consumption from one register to the next: the wrap when it wrapped, negative when exported."""
    if meter is not None and register < previous:
        wrapped = rollover(previous, register, meter.register_digits)
        if wrapped is not None:
            return wrapped
    return register - previous


def rollover_flag(previous: Decimal, register: Decimal, meter) -> str | None:
    """Flag a register wrap, so staff can tell a wrap from a meter replaced without a record."""
    if meter is None or register >= previous:
        return None
    wrapped = rollover(previous, register, meter.register_digits)
    if wrapped is None:
        return None
    return (f"register rolled over from {previous} to {register} at {register_modulus(previous, meter.register_digits)}"
            f" ({wrapped} counted as consumption); if the meter was replaced instead, correct the reading")


def frozen_flag(recent: list[tuple[datetime, Decimal]], interval_minutes: int | None,
                intervals: int = FROZEN_INTERVALS) -> str | None:
    """Flag a register stuck on one value for `intervals` intervals (newest reading first).

    Only meaningful while the unit is occupied; the caller checks that.
    """
    if len(recent) < 2:
        return None
    step = timedelta(minutes=interval_minutes or 60)
    newest_at, value = recent[0]
    since = newest_at
    for at, register in recent:  # the unchanged run, back from the newest reading
        if register != value:
            break
        since = at
    if newest_at - since < step * intervals:
        return None
    return (f"register stuck at {value} from {since:%Y-%m-%d %H:%M} to {newest_at:%Y-%m-%d %H:%M} UTC "
            f"({intervals}+ intervals) while the unit is occupied")
