"""Historical backfill (issue 22 item 4): a range of Koios days as one job, against the nightly import day by day.

Run from the repository root:  .venv/bin/python bench/backfill.py [--days 14] [--sites 2] [--meters 10]
Creates its own database (BENCH_DATABASE_URL, default meterwise_bench_backfill), migrates it, serves
the Koios emulator in a thread and makes one estate with its SparkMeter meters. It then measures,
in the same run, the same days of hourly readings imported:
(a) baseline: `import_koios_day` once per day, oldest first (what running the nightly import for
    each missed day does);
(b) the backfill job over the range (`start_backfill`, inline), after the readings, roll-ups and
    sync watermarks of (a) are removed again;
(c) the backfill run again over the same range (everything already stored: the idempotent re-run).
Prints seconds, readings/s, the ratio of (b) to (a) and the load average (`uptime`) before and
after. Exits 1 unless (a) and (b) stored the same readings and (c) stored none. Drops the database.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import func, make_url, select, text  # noqa: E402

from bench.database import bench_config, drop_database, recreate_database  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/meterwise_bench_backfill"


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def stored(session) -> tuple[int, int]:
    from app.models import Reading

    return session.execute(select(func.count(), func.coalesce(func.sum(Reading.register), 0))
                           .select_from(Reading)).one()


def forget_readings(session) -> None:
    """Back to no readings: the same meters, no roll-ups, no sync watermarks."""
    for statement in ("DELETE FROM readings", "DELETE FROM consumption_rollups",
                      "DELETE FROM settings WHERE key LIKE 'koios.synced.%'",
                      "UPDATE meters SET last_reading_at = NULL, last_register = NULL"):
        session.execute(text(statement))
    session.commit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--sites", type=int, default=2)
    parser.add_argument("--meters", type=int, default=10)
    args = parser.parse_args()
    url = make_url(os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    recreate_database(url)
    try:
        from flask_migrate import upgrade

        from app import create_app
        from app.extensions import db
        from app.models import Estate, Meter
        from app.sources.backfill import start_backfill
        from app.sources.sparkmeter import KoiosApi, import_koios_day
        from tests.emulators import serving
        from tests.emulators.koios import build, create_app as koios_app

        emulator = build(args.sites, args.meters)
        with serving(koios_app(emulator)) as base:
            config = bench_config(url)
            config.KOIOS_URL, config.KOIOS_ORGANIZATION = base, "org-emulated"
            app = create_app(config)
            with app.app_context():
                upgrade(directory=str(ROOT / "migrations"))
                session = db.session
                estate = Estate(code="BNB", name="Bench backfill", country="LS", currency="LSL",
                                timezone="Africa/Maseru")
                session.add(estate)
                session.flush()
                for serials in emulator.meters.values():
                    for serial in serials:
                        session.add(Meter(estate_id=estate.id, serial=serial, utility="electricity", role="bulk",
                                          protocol="sparkmeter", interval_minutes=60))
                session.commit()
                today = datetime.now(UTC).date()
                first, last = today - timedelta(days=args.days), today - timedelta(days=1)
                days = [first + timedelta(days=n) for n in range(args.days)]
                print(f"load before: {load()}")

                started = time.perf_counter()
                api = KoiosApi.from_config()
                for day in days:
                    import_koios_day(session, api, day)
                nightly = time.perf_counter() - started
                baseline = stored(session)
                forget_readings(session)

                started = time.perf_counter()
                row = start_backfill(session, "koios", estate, first, last)
                backfill = time.perf_counter() - started
                result = stored(session)
                started = time.perf_counter()
                again = start_backfill(session, "koios", estate, first, last)
                rerun = time.perf_counter() - started
                readings = baseline[0]
                print(f"{args.days} days x {args.sites} sites x {args.meters} meters = {readings:,} hourly readings")
                print(f"(a) nightly import per day: {nightly:.2f} s = {readings / nightly:,.0f} readings/s")
                print(f"(b) backfill job:           {backfill:.2f} s = {readings / backfill:,.0f} readings/s "
                      f"({row.summary})")
                print(f"(c) backfill re-run:        {rerun:.2f} s ({again.summary})")
                print(f"ratio backfill / nightly: {nightly / backfill:.2f}x the nightly import's speed")
                print(f"load after: {load()}")
                same = result == baseline and row.status == "done"
                nothing_twice = again.accepted == 0 and stored(session) == result
                print("identical readings:", same, "· re-run stored nothing:", nothing_twice)
                return 0 if same and nothing_twice else 1
    finally:
        from app.extensions import db as _db

        try:
            _db.engine.dispose()
        except RuntimeError:
            pass
        drop_database(url)


if __name__ == "__main__":
    sys.exit(main())
