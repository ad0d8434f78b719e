"""Roll-ups (M5): consumption per meter per local hour, day and month, added to on ingest."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.models.metering import ConsumptionRollup
from app.sql_arrays import one_of, pg_array

Bucket = tuple[int, str, datetime]  # meter id, grain, period start (UTC)


def bucket_starts(moment: datetime, tz: ZoneInfo) -> dict[str, datetime]:
    """The local hour, day and month a reading's timestamp falls in, as UTC instants."""
    # A reading stamped exactly on a boundary closes the period before it.
    instant = moment - timedelta(microseconds=1)
    # Every zone's offset is a whole number of quarter hours: readings in one UTC quarter
    # hour share their buckets (a batch has thousands; zone conversion is the slow part).
    quarter = instant.replace(minute=instant.minute - instant.minute % 15, second=0, microsecond=0)
    return _quarter_buckets(quarter.astimezone(UTC), tz)


@lru_cache(maxsize=65536)
def _quarter_buckets(quarter: datetime, tz: ZoneInfo) -> dict[str, datetime]:
    local = quarter.astimezone(tz)
    hour = local.replace(minute=0, second=0, microsecond=0)
    day = datetime(local.year, local.month, local.day, tzinfo=tz)
    month = datetime(local.year, local.month, 1, tzinfo=tz)
    return {"hour": hour.astimezone(UTC), "day": day.astimezone(UTC), "month": month.astimezone(UTC)}


def add_to_buckets(totals: dict[Bucket, list], meter_id: int, moment: datetime, tz: ZoneInfo,
                   consumption: Decimal, readings: int = 1) -> None:
    """Accumulate one reading's consumption into the hour, day and month buckets."""
    for grain, start in bucket_starts(moment, tz).items():
        row = totals.setdefault((meter_id, grain, start), [Decimal(0), 0])
        row[0] += consumption
        row[1] += readings


# PostgreSQL: one statement per batch, columns as arrays (the statement text never grows).
# Less history than a day says nothing about a meter's usual use (the spike check waits).
USUAL_MIN_HOURS = 24

_UPSERT = text(
    "INSERT INTO consumption_rollups (meter_id, grain, period_start, consumption, readings)"
    " SELECT * FROM unnest(CAST(:meter_id AS integer[]), CAST(:grain AS varchar[]),"
    " CAST(:period_start AS timestamptz[]), CAST(:consumption AS numeric[]), CAST(:readings AS integer[]))"
    " ON CONFLICT (meter_id, grain, period_start) DO UPDATE SET"
    " consumption = consumption_rollups.consumption + excluded.consumption,"
    " readings = consumption_rollups.readings + excluded.readings")


def apply(session: Session, totals: dict[Bucket, list]) -> None:
    """Add accumulated totals to the stored roll-ups (insert or add, race-free on PostgreSQL)."""
    if not totals:
        return
    table = ConsumptionRollup.__table__
    rows = [{"meter_id": m, "grain": g, "period_start": s, "consumption": c, "readings": n}
            for (m, g, s), (c, n) in sorted(totals.items())]
    if session.get_bind().dialect.name == "postgresql":
        # Array literals (as the readings insert): psycopg's list dumper checks every element.
        session.execute(_UPSERT, {name: pg_array([row[name] for row in rows]) for name in rows[0]})
        return
    from sqlalchemy.dialects.sqlite import insert
    statement = insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=["meter_id", "grain", "period_start"],
        set_={"consumption": table.c.consumption + statement.excluded.consumption,
              "readings": table.c.readings + statement.excluded.readings},
    )
    session.execute(statement, rows)


def month_totals(session: Session, keys: Iterable[tuple[int, datetime]]) -> dict[tuple[int, datetime], Decimal]:
    """Stored monthly consumption for (meter id, month start) pairs."""
    keys = set(keys)
    if not keys:
        return {}
    meter_ids = {m for m, _ in keys}
    starts = {s for _, s in keys}
    rows = session.execute(select(ConsumptionRollup.meter_id, ConsumptionRollup.period_start,
                                  ConsumptionRollup.consumption).where(
        ConsumptionRollup.grain == "month", one_of(session, ConsumptionRollup.meter_id, meter_ids),
        ConsumptionRollup.period_start.in_(starts)))
    found: dict[tuple[int, datetime], Decimal] = defaultdict(Decimal)
    for meter_id, start, consumption in rows:
        found[(meter_id, start)] = consumption
    return found


def usual_per_hour(session: Session, meter_ids: set[int], since: datetime) -> dict[int, Decimal]:
    """Each meter's average hourly consumption over the hours its roll-ups cover since a moment."""
    rows = session.execute(select(
        ConsumptionRollup.meter_id, func.sum(ConsumptionRollup.consumption),
        func.min(ConsumptionRollup.period_start), func.max(ConsumptionRollup.period_start),
    ).where(ConsumptionRollup.grain == "hour", one_of(session, ConsumptionRollup.meter_id, meter_ids),
            ConsumptionRollup.period_start >= since).group_by(ConsumptionRollup.meter_id))
    usual = {}
    for meter_id, total, first, last in rows:
        # The span from the first hour with readings to the end of the last one, not a count
        # of calendar days: two readings either side of local midnight are two "days" but
        # an hour of history, which says nothing about what is usual.
        hours = Decimal((last - first).total_seconds()) / 3600 + 1
        if hours >= USUAL_MIN_HOURS:
            usual[meter_id] = (total or Decimal(0)) / hours
    return usual


# Rebuilding (demo seed, repairs): the same buckets as bucket_starts(), computed in SQL.
# A reading stamped exactly on a boundary belongs to the period before it, hence the
# microsecond; `AT TIME ZONE` twice turns a local period start back into an instant.
_REBUILD = text(
    "INSERT INTO consumption_rollups (meter_id, grain, period_start, consumption, readings)"
    " SELECT r.meter_id, CAST(:grain AS varchar),"
    " date_trunc(CAST(:grain AS text), (r.taken_at - interval '1 microsecond') AT TIME ZONE e.timezone) AT TIME ZONE e.timezone,"
    " coalesce(sum(r.consumption), 0), count(*)"
    " FROM readings r JOIN meters m ON m.id = r.meter_id JOIN estates e ON e.id = m.estate_id"
    " WHERE (CAST(:all_meters AS boolean) OR r.meter_id = ANY(CAST(:meter_ids AS integer[])))"
    " GROUP BY 1, 3")


def rebuild(session: Session, meter_ids: Iterable[int] | None = None) -> int:
    """Recompute the hour, day and month roll-ups of these meters (all when None) from their readings.

    Refused while any month is archived (M8): its readings are in a file, and a rebuild from
    what is left would erase that month's roll-ups, which bills and explanations still use.
    """
    from app.models import Estate, Meter, Reading
    from app.models.metering import ReadingArchive

    archived = session.scalars(select(ReadingArchive.month).where(ReadingArchive.restored_at.is_(None))).all()
    if archived:
        months = ", ".join(f"{month:%Y-%m}" for month in sorted(archived))
        raise ValueError(f"readings of {months} are archived: restore them (flask readings restore) "
                         "before rebuilding roll-ups")

    ids = None if meter_ids is None else sorted(set(meter_ids))
    table = ConsumptionRollup.__table__
    delete = table.delete()
    if ids is not None:
        if not ids:
            return 0
        delete = delete.where(table.c.meter_id.in_(ids))
    session.execute(delete)
    if session.get_bind().dialect.name == "postgresql":
        for grain in ("hour", "day", "month"):
            session.execute(_REBUILD, {"grain": grain, "all_meters": ids is None, "meter_ids": ids or []})
        count = select(func.count(ConsumptionRollup.id))
        if ids is not None:
            count = count.where(ConsumptionRollup.meter_id.in_(ids))
        return session.scalar(count)
    # SQLite has no time zones: stream the readings through the ingest path's own bucketing.
    zones = dict(session.execute(select(Meter.id, Estate.timezone).join(Estate, Estate.id == Meter.estate_id)).all())
    query = select(Reading.meter_id, Reading.taken_at, Reading.consumption)
    if ids is not None:
        query = query.where(Reading.meter_id.in_(ids))
    totals: dict[Bucket, list] = {}
    tz_cache: dict[str, ZoneInfo] = {}
    for meter_id, taken_at, consumption in session.execute(query.execution_options(yield_per=20_000)):
        tz = tz_cache.setdefault(zones[meter_id], ZoneInfo(zones[meter_id]))
        add_to_buckets(totals, meter_id, taken_at, tz, consumption or Decimal(0))
    apply(session, totals)
    return len(totals)
