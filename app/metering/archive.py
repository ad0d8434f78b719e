"""Readings by month (M8): partitions ahead, whole months archived to Parquet and restored.

On PostgreSQL `readings` is partitioned by UTC month of `taken_at` (migration 0027):
`readings_yYYYYmMM` per month and `readings_default` for anything outside them. The daily job
`readings_partitions` creates the coming months' partitions (moving any rows the default
partition caught for them), so ingest never writes into the default in normal running.

`archive_before(session, month)` writes every whole month before `month` that still has
readings to `<READINGS_ARCHIVE_DIR>/readings-YYYY-MM.parquet` with a JSON manifest beside it
(rows, SHA-256 of the file, first and last reading, and per meter the count and the sums of
register and consumption), reads the file back and checks it against the database, then
detaches and drops the month's partition. Roll-ups, bills and explanations stay; a
`ReadingArchive` row remembers the month, so late readings for it are dead-lettered and a
charge explanation names the file. A month with open dead letters whose reading falls in it, or
with consumption no tariff priced yet (unacknowledged `no_tariff` alerts), is refused with the
list. `restore_month` checks the checksum and the manifest, then brings the month back exactly.
On SQLite (`make run`) the same calls work on the plain table.

Parquet columns: id int64, meter_id int32, taken_at and received_at timestamp[us, UTC],
register and consumption decimal128(20, 6) (exactly the database's numeric(20, 6)), uplink_id
string. The database moves rows with COPY in CSV both ways (times in UTC); pyarrow parses and writes it.
Speed (bench/archive.py): an archive parses the COPY output and writes the file in pieces on a
thread while the rest arrives (the month is never whole in memory); a restore writes CSV pieces
on threads while earlier pieces are copied in, with times cast to zone-less UTC first (formatting
zoned times was most of its cost), checks the month's bounds as rows arrive (the CHECK is added
to the empty table, so attaching scans nothing) and builds the indexes with INDEX_BUILD_MEMORY.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from flask import current_app
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.jobs import job
from app.models import Meter, Reading, utcnow
from app.models.metering import DeadLetter, MeterAlert, ReadingArchive

MONTHS_AHEAD = 3
INDEX_BUILD_MEMORY = "256MB"  # maintenance_work_mem while a month's partition indexes are built
CSV_CHUNK_ROWS = 200_000  # rows per CSV piece written while the previous one is copied in
CSV_THREADS = 2  # threads writing a restore's CSV pieces (pyarrow releases the GIL)
CSV_PIECE_ROWS = 250_000  # an archive's COPY output parsed by pyarrow in pieces of this many rows
ROW_GROUP_ROWS = 1_000_000  # Parquet row groups this long (the last shorter), a multiple of CSV_PIECE_ROWS
MONTH = re.compile(r"[0-9]{4}-[0-9]{2}")
COLUMNS = ("id", "meter_id", "taken_at", "register", "consumption", "received_at", "uplink_id")


class ArchiveRefused(ValueError):
    """The month cannot be archived or restored as asked; nothing was changed."""

    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.details = details or []


@dataclass(frozen=True)
class MonthResult:
    month: date
    rows: int
    path: str
    seconds: float


def parse_month(value: str) -> date:
    """'2026-03' → date(2026, 3, 1); a clear error for anything else."""
    text_value = value.strip() if isinstance(value, str) else ""
    if not MONTH.fullmatch(text_value) or not 1 <= int(text_value[5:]) <= 12 or int(text_value[:4]) < 1:
        raise ArchiveRefused(f"{value!r} is not a month: write it as YYYY-MM, e.g. 2026-03")
    return date(int(text_value[:4]), int(text_value[5:]), 1)


def next_month(month: date, count: int = 1) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """The month's first moment and the next month's, in UTC."""
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    end_month = next_month(month)
    return start, datetime(end_month.year, end_month.month, 1, tzinfo=UTC)


def label(month: date) -> str:
    return f"{month.year:04d}-{month.month:02d}"


def partition_name(month: date) -> str:
    return f"readings_y{month.year:04d}m{month.month:02d}"


def archive_dir() -> Path:
    return Path(current_app.config["READINGS_ARCHIVE_DIR"])


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# ---- partitions ---------------------------------------------------------------------------

def partitions(session: Session) -> dict[date, str]:
    """The month partitions that exist, by month (PostgreSQL; empty elsewhere)."""
    if not _postgres(session):
        return {}
    names = session.scalars(text(
        "SELECT child.relname FROM pg_inherits JOIN pg_class parent ON parent.oid = pg_inherits.inhparent"
        " JOIN pg_class child ON child.oid = pg_inherits.inhrelid WHERE parent.relname = 'readings'")).all()
    found = {}
    for name in names:
        if name.startswith("readings_y") and len(name) == len("readings_y2026m01"):
            found[date(int(name[10:14]), int(name[15:17]), 1)] = name
    return found


def ensure_partition(session: Session, month: date) -> bool:
    """Give the month a partition; rows the default partition caught for it move in. True if created."""
    if not _postgres(session) or month in partitions(session):
        return False
    if session.scalar(select(ReadingArchive.id).where(ReadingArchive.month == month,
                                                      ReadingArchive.restored_at.is_(None))):
        return False  # an archived month stays out until it is restored
    start, end = month_bounds(month)
    name = partition_name(month)
    bounds = {"start": start, "end": end}
    caught = session.scalar(text("SELECT count(*) FROM readings_default WHERE taken_at >= :start AND taken_at < :end"),
                            bounds)
    if not caught:
        session.execute(text(f"CREATE TABLE {name} PARTITION OF readings FOR VALUES FROM ('{start.isoformat()}')"
                             f" TO ('{end.isoformat()}')"))
        return True
    columns = ", ".join(COLUMNS)
    session.execute(text(f"CREATE TABLE {name} (LIKE readings INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"))
    session.execute(text(f"WITH moved AS (DELETE FROM readings_default WHERE taken_at >= :start AND taken_at < :end"
                         f" RETURNING {columns}) INSERT INTO {name} ({columns}) SELECT {columns} FROM moved"), bounds)
    _attach(session, name, start, end)
    return True


def _attach(session: Session, name: str, start: datetime, end: datetime, *, checked: bool = False) -> None:
    """Attach a filled table as the month's partition; the CHECK lets PostgreSQL skip the scan.

    `checked`: the table was given the CHECK (`_add_month_check`) while empty, so its rows were
    checked as they came in and adding it now would only scan them again.
    """
    if not checked:
        _add_month_check(session, name, start, end)
    # The partition's indexes are built here: a sort each, which fits in memory with more than
    # the default 64MB (a month of 10M readings spilled to disk three times).
    session.execute(text(f"SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY}'"))
    session.execute(text(f"ALTER TABLE readings ATTACH PARTITION {name} FOR VALUES FROM ('{start.isoformat()}')"
                         f" TO ('{end.isoformat()}')"))
    session.execute(text(f"ALTER TABLE {name} DROP CONSTRAINT {name}_in_month"))


def _add_month_check(session: Session, name: str, start: datetime, end: datetime) -> None:
    session.execute(text(f"ALTER TABLE {name} ADD CONSTRAINT {name}_in_month CHECK"
                         f" (taken_at >= '{start.isoformat()}' AND taken_at < '{end.isoformat()}')"))


def ensure_partitions_ahead(session: Session, today: date | None = None) -> list[date]:
    """This month's partition and the next MONTHS_AHEAD months', and one for every month whose
    readings the default partition caught (a backfill, a demo history); the months created."""
    if not _postgres(session):
        return []
    today = today or utcnow().date()
    first = today.replace(day=1)
    caught = session.scalars(text("SELECT DISTINCT CAST(date_trunc('month', taken_at AT TIME ZONE 'UTC') AS date)"
                                  " FROM readings_default")).all()
    wanted = sorted({next_month(first, n) for n in range(MONTHS_AHEAD + 1)} | set(caught))
    return [month for month in wanted if ensure_partition(session, month)]


@job("readings_partitions")
def partitions_job(session: Session, progress) -> str:
    created = ensure_partitions_ahead(session)
    session.commit()
    return f"created {len(created)} partitions" if created else "partitions ready"


# ---- what stops a month from going ----------------------------------------------------------

def refusals(session: Session, month: date) -> list[str]:
    """Why the month's readings cannot be archived yet (empty: they can)."""
    start, end = month_bounds(month)
    reasons = []
    letters = session.execute(select(DeadLetter.id, DeadLetter.meter_serial, DeadLetter.reason).where(
        DeadLetter.reading_at >= start, DeadLetter.reading_at < end,
        DeadLetter.replayed_at.is_(None), DeadLetter.dismissed_at.is_(None)).order_by(DeadLetter.id)).all()
    reasons += [f"dead letter #{i} ({serial or 'no meter'}): {reason} — replay or dismiss it"
                for i, serial, reason in letters]
    meters_in_month = select(Reading.meter_id).where(Reading.taken_at >= start, Reading.taken_at < end).distinct()
    unpriced = session.execute(select(MeterAlert.id, Meter.serial, MeterAlert.detail)
                               .join(Meter, Meter.id == MeterAlert.meter_id).where(
        MeterAlert.kind == "no_tariff", MeterAlert.acknowledged_at.is_(None), MeterAlert.raised_at >= start,
        MeterAlert.meter_id.in_(meters_in_month)).order_by(MeterAlert.id)).all()
    reasons += [f"meter {serial}: {detail} — add the tariff and acknowledge alert #{i}"
                for i, serial, detail in unpriced]
    return reasons


def archived_months(session: Session) -> set[date]:
    return set(session.scalars(select(ReadingArchive.month).where(ReadingArchive.restored_at.is_(None))))


def archive_of(session: Session, moment: datetime) -> ReadingArchive | None:
    """The archive holding the readings of `moment`'s UTC month, if that month is archived."""
    month = moment.astimezone(UTC).date().replace(day=1)
    return session.scalar(select(ReadingArchive).where(ReadingArchive.month == month,
                                                       ReadingArchive.restored_at.is_(None)))


# ---- archive --------------------------------------------------------------------------------

def months_to_archive(session: Session, before: date) -> list[date]:
    """Months before `before` that still hold readings, oldest first."""
    if _postgres(session):
        months = []
        for month, name in sorted(partitions(session).items()):
            if month < before and session.scalar(text(f"SELECT EXISTS (SELECT 1 FROM {name})")):
                months.append(month)
        return months
    start, _ = month_bounds(before)
    stamps = session.scalars(select(Reading.taken_at).where(Reading.taken_at < start)
                             .order_by(Reading.taken_at)).all()
    return sorted({stamp.date().replace(day=1) for stamp in stamps})


def archive_before(session: Session, before: date, *, now: datetime | None = None) -> list[MonthResult]:
    """Archive every whole month before `before`; refused as a whole if any month is not ready."""
    now = now or utcnow()
    if before > now.date().replace(day=1):
        raise ArchiveRefused(f"{label(before)} is not over yet: only months before the current one "
                             f"({label(now.date().replace(day=1))}) can be archived")
    months = months_to_archive(session, before)
    blocked = {label(month): refusals(session, month) for month in months}
    blocked = {month: reasons for month, reasons in blocked.items() if reasons}
    if blocked:
        details = [f"{month}: {reason}" for month, reasons in blocked.items() for reason in reasons]
        raise ArchiveRefused(f"{', '.join(blocked)} cannot be archived yet", details)
    results = []
    for month in months:
        results.append(_archive_month(session, month))
        session.commit()
    return results


def _archive_month(session: Session, month: date) -> MonthResult:
    import pyarrow.parquet as pq

    started = datetime.now(UTC)
    folder = archive_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"readings-{label(month)}.parquet"
    partial = path.with_suffix(".parquet.partial")
    _write_month(session, month, partial)
    expected = _database_summary(session, month)
    written = _file_summary(pq.read_table(partial))
    if written != expected:
        partial.unlink()
        raise ArchiveRefused(f"{label(month)}: the file read back does not match the database; nothing was removed")
    os.replace(partial, path)
    digest = sha256_of(path)
    manifest = _manifest(month, path, digest, expected)
    path.with_suffix(".json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    _drop_month(session, month)
    row = session.scalar(select(ReadingArchive).where(ReadingArchive.month == month))
    if row is None:
        row = ReadingArchive(month=month)
        session.add(row)
    row.path, row.sha256, row.rows, row.manifest = str(path), digest, expected["rows"], manifest
    row.archived_at, row.restored_at = utcnow(), None
    _audit(session, "readings.archive", row, {"month": label(month), "rows": expected["rows"], "file": path.name})
    return MonthResult(month, expected["rows"], str(path), (datetime.now(UTC) - started).total_seconds())


def _write_month(session: Session, month: date, path: Path) -> None:
    """The month's readings into a Parquet file (on PostgreSQL written piece by piece as COPY sends them)."""
    import pyarrow.parquet as pq

    if not _postgres(session):
        pq.write_table(_read_month(session, month), path, compression="zstd", row_group_size=ROW_GROUP_ROWS)
        return
    import pyarrow as pa

    session.execute(text("SET LOCAL TimeZone = 'UTC'"))  # times written as ...+00, which Arrow parses
    waiting: list = []  # pieces held until they make a whole row group: the file is laid out as before

    def take(piece) -> None:
        waiting.append(piece)
        if sum(len(part) for part in waiting) >= ROW_GROUP_ROWS:
            flush()

    def flush() -> None:
        if waiting:
            writer.write_table(pa.concat_tables(waiting), row_group_size=ROW_GROUP_ROWS)
            waiting.clear()

    with pq.ParquetWriter(path, schema(), compression="zstd") as writer:
        _copy_month_out(session, f"{partition_name(month)} ({', '.join(COLUMNS)})", take)
        flush()


def _read_month(session: Session, month: date):
    """The month's readings as an Arrow table, through the ORM (SQLite; PostgreSQL streams them)."""
    import pyarrow as pa

    start, end = month_bounds(month)
    rows = session.execute(select(*(getattr(Reading, name) for name in COLUMNS)).where(
        Reading.taken_at >= start, Reading.taken_at < end)).all()
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in COLUMNS]
    return pa.table({name: pa.array(values, type=schema().field(name).type)
                     for name, values in zip(COLUMNS, columns, strict=True)}, schema=schema())


def schema():
    import pyarrow as pa

    return pa.schema([("id", pa.int64()), ("meter_id", pa.int32()), ("taken_at", pa.timestamp("us", tz="UTC")),
                      ("register", pa.decimal128(20, 6)), ("consumption", pa.decimal128(20, 6)),
                      ("received_at", pa.timestamp("us", tz="UTC")), ("uplink_id", pa.string())])


def _copy_month_out(session: Session, source: str, take) -> None:
    """COPY a table's columns (`source`: "table (columns)", quicker than a query) out as CSV and
    hand it to `take` as Arrow tables in order: each CSV_PIECE_ROWS piece is parsed (and taken:
    written to the file) on a thread while the next arrives (COPY sends whole rows)."""
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow as pa
    import pyarrow.csv as pacsv

    read_options = pacsv.ReadOptions(column_names=list(COLUMNS))
    convert_options = pacsv.ConvertOptions(column_types=dict(zip(schema().names, schema().types, strict=True)),
                                           strings_can_be_null=True, quoted_strings_can_be_null=False)

    def parse(data: bytes) -> None:
        take(pacsv.read_csv(pa.BufferReader(data), read_options=read_options, convert_options=convert_options))

    parsed = []
    connection = session.connection().connection.driver_connection
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="archive-parse") as pool:
        with connection.cursor() as cursor, cursor.copy(f"COPY {source} TO STDOUT (FORMAT csv)") as copy:
            piece = bytearray()
            rows = 0
            for row in copy:  # the hot loop: one row a turn, so as little as possible per row
                piece += row
                rows += 1
                if rows == CSV_PIECE_ROWS:
                    parsed.append(pool.submit(parse, bytes(piece)))
                    piece, rows = bytearray(), 0
        if piece:
            parsed.append(pool.submit(parse, bytes(piece)))
        for future in parsed:  # one worker: pieces are taken in order; this raises the first failure
            future.result()


def _database_summary(session: Session, month: date) -> dict:
    """Row count, first and last reading and per-meter counts and sums, from the database."""
    start, end = month_bounds(month)
    in_month = (Reading.taken_at >= start, Reading.taken_at < end)
    rows, first, last = session.execute(select(func.count(), func.min(Reading.taken_at), func.max(Reading.taken_at))
                                        .where(*in_month)).one()
    meters = session.execute(select(Reading.meter_id, func.count(), func.sum(Reading.register),
                                    func.coalesce(func.sum(Reading.consumption), 0))
                             .where(*in_month).group_by(Reading.meter_id)).all()
    return _summary(rows, first, last, meters)


def _file_summary(table) -> dict:
    """The same figures computed from an Arrow table (the file read back)."""
    import pyarrow.compute as pc

    if table.num_rows == 0:
        return _summary(0, None, None, [])
    grouped = table.group_by("meter_id").aggregate([("id", "count"), ("register", "sum"), ("consumption", "sum")])
    meters = zip(grouped.column("meter_id").to_pylist(), grouped.column("id_count").to_pylist(),
                 grouped.column("register_sum").to_pylist(), grouped.column("consumption_sum").to_pylist(), strict=True)
    return _summary(table.num_rows, pc.min(table.column("taken_at")).as_py(), pc.max(table.column("taken_at")).as_py(),
                    meters)


def _summary(rows: int, first, last, meters) -> dict:
    def amount(value) -> str:
        return f"{Decimal(value or 0).quantize(Decimal('0.000001'))}"

    def moment(value) -> str | None:
        return value.astimezone(UTC).isoformat() if value is not None else None

    return {"rows": rows, "first_reading_at": moment(first), "last_reading_at": moment(last),
            "meters": {str(meter_id): {"rows": count, "register_sum": amount(register),
                                       "consumption_sum": amount(consumption)}
                       for meter_id, count, register, consumption in sorted(meters)}}


def _manifest(month: date, path: Path, digest: str, summary: dict) -> dict:
    return {"month": label(month), "file": path.name, "sha256": digest, "format": "parquet",
            "columns": list(COLUMNS), "created_at": utcnow().isoformat(), **summary}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _drop_month(session: Session, month: date) -> None:
    if _postgres(session):
        name = partition_name(month)
        session.execute(text(f"ALTER TABLE readings DETACH PARTITION {name}"))
        session.execute(text(f"DROP TABLE {name}"))
        return
    start, end = month_bounds(month)
    session.execute(Reading.__table__.delete().where(Reading.taken_at >= start, Reading.taken_at < end))


# ---- restore --------------------------------------------------------------------------------

def restore_month(session: Session, month: date) -> MonthResult:
    """Bring an archived month back exactly, after checking the file; the caller commits."""
    import pyarrow.parquet as pq

    started = datetime.now(UTC)
    row = session.scalar(select(ReadingArchive).where(ReadingArchive.month == month))
    start, end = month_bounds(month)
    present = session.scalar(select(func.count()).select_from(Reading).where(
        Reading.taken_at >= start, Reading.taken_at < end))
    if row is None or row.restored_at is not None:
        if present:
            raise ArchiveRefused(f"{label(month)} is in the database ({present:,} readings): there is nothing to restore")
        raise ArchiveRefused(f"{label(month)} was never archived")
    if present:
        raise ArchiveRefused(f"{label(month)} already has {present:,} readings in the database; restore refused")
    path = Path(row.path)
    if not path.exists():
        raise ArchiveRefused(f"the archive file {path} is missing")
    if sha256_of(path) != row.sha256 or row.manifest.get("sha256") != row.sha256:
        raise ArchiveRefused(f"{path.name} does not match its checksum: the file was changed or damaged")
    try:
        table = pq.read_table(path, schema=schema())
    except Exception as error:  # noqa: BLE001 - any unreadable file is refused the same way
        raise ArchiveRefused(f"{path.name} cannot be read: {error}") from error
    summary = _file_summary(table)
    recorded = {key: row.manifest.get(key) for key in summary}
    if summary != recorded:
        raise ArchiveRefused(f"{path.name} does not match its manifest (rows or per-meter sums differ)")
    _load_month(session, month, table)
    row.restored_at = utcnow()
    _audit(session, "readings.restore", row, {"month": label(month), "rows": table.num_rows, "file": path.name})
    return MonthResult(month, table.num_rows, str(path), (datetime.now(UTC) - started).total_seconds())


def _load_month(session: Session, month: date, table) -> None:
    if not _postgres(session):
        rows = table.to_pylist()
        if rows:
            session.execute(Reading.__table__.insert(), rows)
        return
    start, end = month_bounds(month)
    name = partition_name(month)
    session.execute(text(f"CREATE TABLE {name} (LIKE readings INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"))
    _add_month_check(session, name, start, end)  # empty: nothing to scan; COPY checks each row
    _copy_table_in(session, name, table)
    _attach(session, name, start, end, checked=True)


def _copy_table_in(session: Session, name: str, table) -> None:
    """COPY an Arrow table into `name` as CSV, written in pieces by CSV_THREADS threads while the
    pieces before are sent (pyarrow's writer and the server's parsing overlap instead of taking turns)."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor
    from itertools import islice

    import pyarrow as pa
    import pyarrow.csv as pacsv

    options = pacsv.WriteOptions(include_header=False)

    utc = pa.timestamp("us")  # the same instants without a zone: formatting a zoned time looks the
    # zone up per value, 30 times slower; PostgreSQL reads them in the session's UTC (set below)

    def piece(offset: int):
        part = table.slice(offset, CSV_CHUNK_ROWS)
        for name in ("taken_at", "received_at"):
            index = part.schema.get_field_index(name)
            part = part.set_column(index, name, part.column(index).cast(utc))
        sink = pa.BufferOutputStream()
        pacsv.write_csv(part, sink, write_options=options)  # times as 2026-09-01 00:30:00.000000
        return sink.getvalue()

    offsets = iter(range(0, table.num_rows, CSV_CHUNK_ROWS))
    session.execute(text("SET LOCAL TimeZone = 'UTC'"))
    connection = session.connection().connection.driver_connection
    with ThreadPoolExecutor(max_workers=CSV_THREADS, thread_name_prefix="archive-csv") as pool:
        ahead = deque(pool.submit(piece, offset) for offset in islice(offsets, CSV_THREADS + 1))
        with connection.cursor() as cursor, cursor.copy(
                f"COPY {name} ({', '.join(COLUMNS)}) FROM STDIN (FORMAT csv)") as copy:
            while ahead:
                data = ahead.popleft().result()
                following = next(offsets, None)
                if following is not None:  # at most CSV_THREADS + 1 pieces in memory
                    ahead.append(pool.submit(piece, following))
                copy.write(memoryview(data))


def _audit(session: Session, action: str, row: ReadingArchive, new: dict) -> None:
    from app.audit import record

    session.flush()
    record(session, action, row, new=new)
