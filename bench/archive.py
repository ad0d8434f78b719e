"""Readings archive (M8): archive then restore one month of readings, against COPY to and from CSV.

Run from the repository root:  .venv/bin/python bench/archive.py [--rows 10000000]
Creates its own database (BENCH_DATABASE_URL, default meterwise_bench_archive), migrates it, makes
one estate with enough half-hourly meters for `--rows` readings in the month three months back,
and fills that month's partition. It then measures, in the same run:
(a) baseline: `COPY <partition> TO` a CSV file, and `COPY FROM` that file into an empty table
    followed by the same three indexes the partition has (how an operator would dump and reload);
(b) `archive_before` (COPY out, Parquet file, read back and checked against the database,
    manifest, partition dropped) and `restore_month` (checksum and manifest checked, COPY in,
    indexes, partition attached).
Prints seconds and rows/s each way, the ratios to COPY, whether the goals (>= 100,000 rows/s both
ways, >= 0.5x COPY) are met and the load average (`uptime`) before and after. Exits 1 unless the
restored month is identical to the one archived (a hash over every row). Drops the database.
"""
from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import make_url, text  # noqa: E402

from bench.database import bench_config, drop_database, recreate_database  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/meterwise_bench_archive"
PER_METER = 1_440  # half-hourly readings in a 30-day month
ROW_HASH = "SELECT count(*), sum(hashtextextended(t::text, 0)) FROM {table} t"


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def fill(session, archive, month, rows: int) -> int:
    """An estate, its meters and `rows` readings in the month's partition; returns the count."""
    from app.models import Estate, Meter

    estate = Estate(code="BNA", name="Bench archive", country="ZA", currency="ZAR", timezone="Africa/Johannesburg")
    session.add(estate)
    session.flush()
    meters = math.ceil(rows / PER_METER)
    session.execute(Meter.__table__.insert(), [
        {"estate_id": estate.id, "serial": f"{90_000_000 + i}", "utility": "electricity", "role": "bulk",
         "protocol": "mqtt_direct", "interval_minutes": 30, "register_digits": 8, "bidirectional": False,
         "relay_state": "on", "reports_on_boundaries": True} for i in range(meters)])
    session.commit()
    start, _ = archive.month_bounds(month)
    name = archive.partition_name(month)
    session.execute(text(f"CREATE TABLE {name} (LIKE readings INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"))
    session.execute(text(
        f"INSERT INTO {name} (meter_id, taken_at, register, consumption, received_at, uplink_id)"
        " SELECT m.id, CAST(:start AS timestamptz) + n * interval '30 minutes', 1000 + n * 0.25 + m.id % 7,"
        " CASE WHEN n = 0 THEN NULL ELSE 0.25 END,"
        " CAST(:start AS timestamptz) + n * interval '30 minutes' + interval '41 seconds',"
        " CASE WHEN m.id % 5 = 0 THEN 'uplink-' || m.id || '-' || n END"
        " FROM meters m CROSS JOIN generate_series(0, :per - 1) AS n"
        " WHERE m.id <= (SELECT min(id) FROM meters) + :full_meters - 1 OR n < :rest"),
        {"start": start, "per": PER_METER, "full_meters": rows // PER_METER, "rest": rows % PER_METER})
    _, end = archive.month_bounds(month)
    archive._attach(session, name, start, end)
    session.commit()
    return session.scalar(text(f"SELECT count(*) FROM {name}"))


def copy_baseline(session, name: str, folder: Path) -> tuple[float, float]:
    """COPY the partition out to CSV, then into an empty table plus its three indexes."""
    connection = session.connection().connection.driver_connection
    path = folder / "baseline.csv"
    started = time.perf_counter()
    with open(path, "wb") as out, connection.cursor() as cursor, \
            cursor.copy(f"COPY {name} TO STDOUT (FORMAT csv)") as copy:
        for chunk in copy:
            out.write(chunk)
    session.commit()
    copy_out = time.perf_counter() - started
    started = time.perf_counter()
    session.execute(text("CREATE TABLE baseline_copy (LIKE readings INCLUDING DEFAULTS)"))
    with open(path, "rb") as source, connection.cursor() as cursor, \
            cursor.copy("COPY baseline_copy FROM STDIN (FORMAT csv)") as copy:
        while chunk := source.read(1 << 20):
            copy.write(chunk)
    for columns in ("id, taken_at", "meter_id, taken_at", "meter_id, uplink_id, taken_at"):
        session.execute(text(f"CREATE UNIQUE INDEX ON baseline_copy ({columns})"))
    session.commit()
    copy_in = time.perf_counter() - started
    session.execute(text("DROP TABLE baseline_copy"))
    session.commit()
    path.unlink()
    return copy_out, copy_in


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    args = parser.parse_args()
    url = make_url(os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    recreate_database(url)
    folder = Path(tempfile.mkdtemp(prefix="meterwise-bench-archive-"))
    try:
        from flask_migrate import upgrade

        from app import create_app
        from app.extensions import db
        from app.metering import archive

        config = bench_config(url)
        config.READINGS_ARCHIVE_DIR = str(folder / "archive")
        app = create_app(config)
        with app.app_context():
            upgrade(directory=str(ROOT / "migrations"))
            session = db.session
            now = datetime.now(UTC)
            month = archive.next_month(now.date().replace(day=1), -3)
            name = archive.partition_name(month)
            print(f"load before: {load()}")
            started = time.perf_counter()
            rows = fill(session, archive, month, args.rows)
            print(f"filled {rows:,} readings of {archive.label(month)} in {time.perf_counter() - started:.1f} s")
            before = session.execute(text(ROW_HASH.format(table=name))).one()
            session.commit()
            copy_out, copy_in = copy_baseline(session, name, folder)

            started = time.perf_counter()
            [result] = archive.archive_before(session, archive.next_month(month))
            archived = time.perf_counter() - started
            size = Path(result.path).stat().st_size
            started = time.perf_counter()
            archive.restore_month(session, month)
            session.commit()
            restored = time.perf_counter() - started
            after = session.execute(text(ROW_HASH.format(table=name))).one()
            session.commit()
        print(f"\nreadings archive: one month, {rows:,} readings ({rows / PER_METER:,.0f} meters, half-hourly)")
        out_rate, in_rate = rows / archived, rows / restored
        print(f"  archive (Parquet {size / 1e6:,.1f} MB)   {archived:7.2f} s  {out_rate:12,.0f} rows/s")
        print(f"  restore                      {restored:7.2f} s  {in_rate:12,.0f} rows/s")
        print(f"baseline COPY to CSV           {copy_out:7.2f} s  {rows / copy_out:12,.0f} rows/s")
        print(f"baseline COPY from CSV + index {copy_in:7.2f} s  {rows / copy_in:12,.0f} rows/s")
        ratio_out, ratio_in = copy_out / archived, copy_in / restored
        print(f"ratio to COPY: archive {ratio_out:.2f}x, restore {ratio_in:.2f}x")
        speed = out_rate >= 100_000 and in_rate >= 100_000
        print(f"goal >= 100,000 rows/s both ways: {'met' if speed else 'missed'}; "
              f"goal >= 0.5x COPY: {'met' if min(ratio_out, ratio_in) >= 0.5 else 'missed'}")
        same = before == after
        print(f"restored month identical to the archived one: {'yes' if same else 'NO'} "
              f"({after[0]:,} rows, row hash {'equal' if same else 'differs'})")
        print(f"load after:  {load()}")
        return 0 if same else 1
    finally:
        drop_database(url)
        for path in sorted(folder.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        folder.rmdir()


if __name__ == "__main__":
    sys.exit(main())
