"""Bulk imports (A1): 10,000 units + 10,000 meters previewed then committed, against one commit per row.

Run from the repository root:  .venv/bin/python bench/imports.py [--units 10000] [--baseline 500]
Creates its own database (BENCH_DATABASE_URL, default meterwise_bench_imports), migrates it and
makes two empty ZAR estates. It then measures, in the same run:
(a) batched: `import_file` (the preview: read, check, classify, stage every row) then
    `commit_import` (re-check, bulk insert, audit) of a `--units`-row units CSV, then of a meters CSV
    with one meter per unit, on the first estate: the whole 2 x `--units`-row import, timed;
(b) baseline: the same kinds' per-row checks and apply with a commit after every row (how a loop
    over the rows with the ORM would do it), on `--baseline` rows of each file on the second estate,
    extrapolated to the same number of rows.
Prints seconds and rows/s for each, the ratio, whether the goals (whole import <= 10 s, >= 10x the
baseline) are met and the load average (`uptime`) before and after. Exits 1 unless every unit and
meter was created exactly once and a second upload of the same files changed nothing.
Drops the database afterwards.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import func, make_url, select  # noqa: E402

from bench.database import bench_config, drop_database, recreate_database  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/meterwise_bench_imports"


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def files(count: int, serial_base: int = 81_000_000) -> tuple[bytes, bytes]:
    statuses = ("occupied", "vacant", "maintenance")
    units = ["unit,floor_area_m2,status"] + [f"U{i:05d},{40 + i % 80}.5,{statuses[i % 3]}" for i in range(count)]
    meters = ["unit,serial,utility,role,protocol,dev_eui,interval_minutes,register_digits,bidirectional"]
    meters += [f"U{i:05d},{'00' if i % 7 == 0 else ''}{serial_base + i},electricity,unit,mqtt_direct,,30,6,no"
               for i in range(count)]
    return ("\n".join(units) + "\n").encode(), ("\n".join(meters) + "\n").encode()


def batched(session, estate, units_csv: bytes, meters_csv: bytes) -> dict[str, float]:
    from app.estates.imports import commit_import, import_file

    timings = {}
    for kind, data in (("units", units_csv), ("meters", meters_csv)):
        started = time.perf_counter()
        report = import_file(session, estate, kind, f"{kind}.csv", data)
        timings[f"{kind} preview"] = time.perf_counter() - started
        assert report.batch.rejected == 0, report.rejected[:3]
        started = time.perf_counter()
        commit_import(session, report.batch)
        timings[f"{kind} commit"] = time.perf_counter() - started
    return timings


def one_commit_per_row(session, estate, units_csv: bytes, meters_csv: bytes, rows: int) -> float:
    """The same per-row checks and apply, one row and one commit at a time; returns seconds for 2 x rows."""
    from app.estates.import_files import read_table
    from app.estates.imports import ImportContext, get_kind, stage_rows
    from app.models import utcnow

    started = time.perf_counter()
    for kind_name, data in (("units", units_csv), ("meters", meters_csv)):
        kind = get_kind(kind_name)
        table = read_table(data, f"{kind_name}.csv")
        for cells in table.rows[:rows]:
            ctx = ImportContext(session, estate, None, utcnow())
            staged = stage_rows(ctx, kind, [cells])
            assert staged[0].action == "create", staged[0].errors
            kind.apply(ctx, staged)
            session.commit()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=10_000)
    parser.add_argument("--baseline", type=int, default=500, help="rows of each file for the one-commit-per-row run")
    args = parser.parse_args()
    url = make_url(os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    recreate_database(url)
    try:
        return run(url, args)
    finally:
        drop_database(url)


def run(url, args) -> int:
    from flask_migrate import upgrade

    from app import create_app
    from app.estates.imports import import_file
    from app.extensions import db
    from app.models import AuditLog, Estate, Meter, Unit

    app = create_app(bench_config(url))
    with app.app_context():
        upgrade()
        estates = [Estate(code=code, name=name, country="ZA", currency="ZAR", timezone="Africa/Johannesburg")
                   for code, name in (("BULK", "Bulk import"), ("ROWS", "One row at a time"))]
        db.session.add_all(estates)
        db.session.commit()
        bulk, rows = estates
        units_csv, meters_csv = files(args.units)
        print(f"load before: {load()}")

        timings = batched(db.session, bulk, units_csv, meters_csv)
        total = sum(timings.values())
        # Its own meter serials: a serial is unique across estates.
        baseline = one_commit_per_row(db.session, rows, *files(args.baseline, 91_000_000), args.baseline)
        print(f"load after:  {load()}")

        created_units = db.session.scalar(select(func.count(Unit.id)).where(Unit.estate_id == bulk.id))
        created_meters = db.session.scalar(select(func.count(Meter.id)).where(Meter.estate_id == bulk.id))
        audits = db.session.scalar(select(func.count(AuditLog.id)).where(AuditLog.estate_id == bulk.id))
        again = [import_file(db.session, bulk, kind, "again.csv", data, dry_run=False)
                 for kind, data in (("units", units_csv), ("meters", meters_csv))]
        unchanged = import_file(db.session, bulk, "units", "copy.csv", units_csv + b"\n", dry_run=False)
        after = (db.session.scalar(select(func.count(Unit.id)).where(Unit.estate_id == bulk.id)),
                 db.session.scalar(select(func.count(Meter.id)).where(Meter.estate_id == bulk.id)))

    n = 2 * args.units
    per_row_rate = 2 * args.baseline / baseline
    extrapolated = n / per_row_rate
    print(f"\nbulk imports: {args.units:,} units + {args.units:,} meters = {n:,} rows")
    for name, seconds in timings.items():
        print(f"  {name:<16} {seconds:7.2f} s")
    print(f"  {'whole import':<16} {total:7.2f} s   {n / total:9,.0f} rows/s")
    print(f"baseline, one commit per row ({2 * args.baseline:,} rows measured): {baseline:.2f} s, "
          f"{per_row_rate:,.0f} rows/s -> {extrapolated:,.0f} s for {n:,} rows")
    ratio = extrapolated / total
    print(f"ratio: {ratio:.1f}x")
    print(f"goal whole import <= 10 s: {'met' if total <= 10 else 'NOT met'}; "
          f"goal >= 10x baseline: {'met' if ratio >= 10 else 'NOT met'}")
    ok = (created_units == created_meters == args.units and audits >= 2 * args.units
          and all(r.repeated for r in again) and unchanged.batch.unchanged == args.units
          and after == (args.units, args.units))
    print(f"created exactly once, second upload changed nothing: {'yes' if ok else 'NO'} "
          f"(units {created_units}, meters {created_meters}, audit rows {audits}, after re-upload {after})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
