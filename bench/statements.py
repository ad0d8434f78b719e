"""Monthly statements: statements/s rendered per unit-at-a-time queries vs batched loading, and in parallel.

Run from the repository root:  .venv/bin/python bench/statements.py [--units 2000] [--workers 2]
Creates its own PostgreSQL database (BENCH_DATABASE_URL, default meterwise_bench_statements
on 127.0.0.1), migrates it, posts a month of activity for every unit through the ledger
(three top-ups and thirty days of electricity and water consumption each), then measures
(a) the baseline: per statement, load that one unit's figures with its own queries and render;
(b) batched: load the whole estate's month in a fixed number of queries, then render each;
(c) (b) split over --workers processes, each with its own connection.
It checks that (a) and (b) produce identical figures, prints statements/s and the ratios,
and drops the database, also on error. It never asserts times: the machine decides those.
"""
from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import sys
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.database import bench_config, drop_database, recreate_database  # noqa: E402
from sqlalchemy import make_url, text  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/meterwise_bench_statements"
PERIOD = "2026-01"
GOAL_PER_S = 100


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=2000, help="units (statements) in the estate")
    parser.add_argument("--baseline", type=int, default=300,
                        help="statements in the one-unit-at-a-time baseline pass")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                        help="processes in the parallel pass")
    return parser.parse_args()


def build_month(session, units: int) -> int:
    """One ZAR estate with `units` units and a month of ledger activity each; returns its id."""
    from app.ledger import Entry, post_many
    from app.ledger.accounts import open_wallet, system_account
    from app.models import Estate, Unit

    estate = Estate(code="BENCH", name="Bench Estate", country="ZA", currency="ZAR",
                    timezone="Africa/Johannesburg")
    session.add(estate)
    session.flush()
    clearing = system_account(session, estate, "clearing", "payments")
    revenue = {u: system_account(session, estate, "revenue", u, utility=u) for u in ("electricity", "water")}
    unit_rows = [Unit(estate_id=estate.id, number=f"U{i:05d}", occupancy_status="occupied")
                 for i in range(units)]
    session.add_all(unit_rows)
    session.flush()
    tz = ZoneInfo("Africa/Johannesburg")
    start = datetime(2026, 1, 1, tzinfo=tz)
    entries = []
    for unit in unit_rows:
        wallet = open_wallet(session, unit, ("electricity", "water"))
        pockets = {p.utility: p.id for p in wallet.pockets}
        for n, day in enumerate((2, 12, 22)):
            entries.append(Entry(estate.id, "topup", f"b:t:{unit.id}:{n}", [
                (pockets["electricity"], Decimal("300")), (pockets["water"], Decimal("150")),
                (clearing.id, Decimal("-450"))], occurred_at=start + timedelta(days=day - 1, hours=9),
                memo="PayFast top-up R 450.00"))
        for day in range(31):
            for utility, price in (("electricity", Decimal("2.85")), ("water", Decimal("38.50"))):
                quantity = Decimal(5 + (unit.id * 7 + day * 3) % 11) / (1 if utility == "electricity" else 50)
                charge = (quantity * price).quantize(Decimal("0.01"))
                entries.append(Entry(estate.id, "consumption", f"b:c:{unit.id}:{utility}:{day}", [
                    (pockets[utility], -charge), (revenue[utility].id, charge)],
                    occurred_at=start + timedelta(days=day, hours=23, minutes=30),
                    memo=f"{utility} {quantity} on day {day + 1} at R {price}/kWh"))
        if len(entries) >= 20_000:
            post_many(session, entries)
            session.commit()
            entries = []
    post_many(session, entries)
    session.commit()
    return estate.id


def render_chunk(args: tuple[str, int, list[int]]) -> int:
    """Worker process: load a chunk of units in one batch and render each statement."""
    url_text, estate_id, unit_ids = args
    from app import create_app
    from app.extensions import db
    from app.models import Estate
    from app.statements.figures import load_statements
    from app.statements.pdf import render_statement

    logging.disable(logging.INFO)
    app = create_app(bench_config(make_url(url_text)))
    with app.app_context():
        estate = db.session.get(Estate, estate_id)
        statements = load_statements(db.session, estate, PERIOD, unit_ids=unit_ids)
        for data in statements:
            render_statement(data)
        db.session.remove()
        db.engine.dispose()
    return len(statements)


def main() -> int:
    args = parse_args()
    url = make_url(os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    if url.get_backend_name() != "postgresql":
        print("bench/statements.py needs PostgreSQL (BENCH_DATABASE_URL)", file=sys.stderr)
        return 2
    from flask_migrate import upgrade

    from app import create_app

    print(f"database: {url.render_as_string(hide_password=True)}  (created for this run, dropped after)")
    recreate_database(url)
    try:
        app = create_app(bench_config(url))
        with app.app_context():
            from app.extensions import db
            from app.models import Estate, Unit
            from app.statements.figures import load_statements, statement_for
            from app.statements.pdf import render_statement

            logging.disable(logging.INFO)
            upgrade()
            started = time.perf_counter()
            estate_id = build_month(db.session, args.units)
            # Fresh bulk-loaded tables have no planner statistics until autovacuum comes by;
            # without them one unit's queries were planned as scans (0.6 s a statement).
            db.session.execute(text("ANALYZE"))
            db.session.commit()
            print(f"setup: {args.units:,} units, {args.units * 65:,} ledger transactions for {PERIOD} "
                  f"in {time.perf_counter() - started:.1f}s")
            session = db.session
            estate = session.get(Estate, estate_id)
            units = session.query(Unit).filter(Unit.estate_id == estate_id).order_by(Unit.number).all()

            # (a) baseline: one unit at a time, its own queries, then render.
            sample = units[:args.baseline]
            started = time.perf_counter()
            baseline_figures = {}
            for unit in sample:
                data = statement_for(session, unit, PERIOD)
                render_statement(data)
                baseline_figures[unit.id] = data.figures()
            baseline_s = time.perf_counter() - started
            baseline_rate = len(sample) / baseline_s
            print(f"(a) baseline, per-unit queries + render: {len(sample):,} statements in "
                  f"{baseline_s:.2f}s = {baseline_rate:,.0f} statements/s")

            # (b) batched loading, one process.
            started = time.perf_counter()
            statements = load_statements(session, estate, PERIOD)
            load_s = time.perf_counter() - started
            for data in statements:
                render_statement(data)
            batched_s = time.perf_counter() - started
            batched_rate = len(statements) / batched_s
            same = all(baseline_figures[s.unit_id] == s.figures() for s in statements
                       if s.unit_id in baseline_figures)
            print(f"(b) batched load ({load_s:.2f}s for all) + render: {len(statements):,} statements in "
                  f"{batched_s:.2f}s = {batched_rate:,.0f} statements/s "
                  f"(x{batched_rate / baseline_rate:.1f} the baseline; figures identical: {same})")
            ids = [u.id for u in units]
            session.remove()

        # (c) parallel processes, each loading its share in one batch.
        workers = max(1, args.workers)
        chunks = [ids[i::workers] for i in range(workers)]
        started = time.perf_counter()
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            done = sum(pool.map(render_chunk, [(url.render_as_string(hide_password=False), estate_id, c)
                                               for c in chunks]))
        parallel_s = time.perf_counter() - started
        parallel_rate = done / parallel_s
        print(f"(c) {workers} worker processes (incl. start-up): {done:,} statements in {parallel_s:.2f}s "
              f"= {parallel_rate:,.0f} statements/s (x{parallel_rate / batched_rate:.2f} of one process)")
        goal = "met" if batched_rate >= GOAL_PER_S else "NOT met"
        print(f"goal >= {GOAL_PER_S} statements/s in one process: {goal}")
        return 0 if same else 1
    finally:
        with create_app(bench_config(url)).app_context():
            from app.extensions import db
            db.engine.dispose()
        drop_database(url)


if __name__ == "__main__":
    sys.exit(main())
