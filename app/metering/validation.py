"""Validation, estimation and editing rules (VEE, M3) as pure functions over plain values.

A rule that refuses returns the reason (the message goes to the dead letters); a rule that
flags returns the alert text (the reading is kept and billed, the meter gets an alert).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

MAX_FUTURE = timedelta(minutes=10)  # meter clocks drift; beyond this the timestamp is wrong
MAX_AGE = timedelta(days=400)  # older than this is a replay of archived data or a dead clock
SPIKE_FACTOR = Decimal(10)  # this many times the meter's usual hourly use is a spike
SPIKE_FLOOR_PER_HOUR = Decimal("1")  # below this much per hour nothing is a spike
GAP_INTERVALS = 3  # this many missed intervals (or hours, without an interval) is a gap


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
                     following: Decimal | None = None) -> str | None:
    """A register never goes backwards: below its predecessor or above its successor is tamper."""
    if previous is not None and register < previous:
        return f"register went backwards from {previous} to {register} (rollback or tamper)"
    if following is not None and register > following:
        return f"register {register} is above the later reading's {following} (rollback or tamper)"
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
