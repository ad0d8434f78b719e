"""Levy run (B3): 10,000 units x 3 levy definitions (30,000 charges), against one post() and commit per charge.

Run from the repository root:  .venv/bin/python bench/levies.py [--units 10000] [--baseline 1000]
Creates its own database (BENCH_DATABASE_URL, default meterwise_bench_levies), migrates it and
makes two ZAR estates with `--units` units each (floor areas 40-120 m2) and one owner per unit,
and three levies on each (admin by floor area, reserve fund equal, a quarterly special levy).
It then measures, in the same run:
(a) `run_levies` for one month on the first estate: every share split, the owner levy pockets
    opened, 30,000 charges posted through `post_many` and their LevyCharge rows, one commit;
    then the same month again, which must post nothing;
(b) baseline: the same charges on the second estate one at a time, `post()` then a commit per
    charge, on `--baseline` charges, extrapolated to the same count.
Prints seconds and charges/s for each, the ratio, whether the goals (<= 10 s, >= 10x the
baseline) are met and the load average before and after. Exits 1 unless every unit was charged
exactly its shares, the shares add up to each levy's total and the re-run posted nothing.
Drops the database afterwards.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, make_url, select  # noqa: E402

from bench.database import bench_config, drop_database, recreate_database  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/meterwise_bench_levies"
MONTH = "2026-03"  # a quarter month: all three levies are due


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def seed(session, code: str, count: int):
    from app.billing.levies import save_definition
    from app.models import Estate, Person, Unit, UnitOwnership

    estate = Estate(code=code, name=f"Scheme {code}", country="ZA", currency="ZAR", timezone="Africa/Johannesburg")
    session.add(estate)
    session.flush()
    session.execute(insert(Unit), [{"estate_id": estate.id, "number": f"U{i:05d}",
                                    "floor_area_m2": Decimal(40 + i % 81) + Decimal("0.5"),
                                    "occupancy_status": "occupied"} for i in range(count)])
    session.execute(insert(Person), [{"full_name": f"Owner {code} {i}", "estate_id": estate.id} for i in range(count)])
    units = session.scalars(select(Unit.id).where(Unit.estate_id == estate.id).order_by(Unit.number)).all()
    people = session.scalars(select(Person.id).where(Person.estate_id == estate.id).order_by(Person.id)).all()
    session.execute(insert(UnitOwnership), [{"unit_id": u, "person_id": p, "since": date(2020, 1, 1),
                                             "share_percent": Decimal("100")} for u, p in zip(units, people)])
    session.commit()
    for form in ({"name": "Admin levy", "amount": "2500000.00", "allocation": "floor_area", "frequency": "monthly"},
                 {"name": "Reserve fund", "amount": "333333.33", "allocation": "equal", "frequency": "monthly"},
                 {"name": "Roof special levy", "amount": "1000000.00", "allocation": "floor_area",
                  "frequency": "quarterly", "charge_month": "3"}):
        save_definition(session, estate, {"effective_from": "2026-01", "units": "all", **form})
    return estate


def one_at_a_time(session, estate, limit: int) -> float:
    """The baseline: each charge posted by itself and committed."""
    from app.billing.levies import definitions_of, shares_of
    from app.ledger import Entry, post
    from app.ledger.accounts import owner_pocket, system_account
    from app.models import Unit

    income = system_account(session, estate, "levy", "income")
    units = {u.id: u for u in session.scalars(select(Unit).where(Unit.estate_id == estate.id))}
    charges = [(d, row) for d in definitions_of(session, estate) for row in shares_of(session, estate, d)][:limit]
    session.commit()
    started = time.perf_counter()
    for definition, row in charges:
        pocket = owner_pocket(session, units[row.unit_id], "levy")
        post(session, Entry(estate_id=estate.id, kind="levy",
                            idempotency_key=f"levy:{definition.id}:{row.unit_id}:{MONTH}:1",
                            legs=[(pocket.id, -row.share), (income.id, row.share)],
                            memo=f"{definition.name} {MONTH}: unit {row.unit_number}"))
        session.commit()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=10_000)
    parser.add_argument("--baseline", type=int, default=1000, help="charges posted one at a time")
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
    from app.billing.levies import definitions_of, run_levies
    from app.extensions import db
    from app.models import LedgerTransaction
    from app.models.levies import LevyCharge

    app = create_app(bench_config(url))
    with app.app_context():
        upgrade()
        batch_estate = seed(db.session, "LEVYB", args.units)
        rows_estate = seed(db.session, "LEVYR", args.units)
        print(f"load before: {load()}")
        started = time.perf_counter()
        report = run_levies(db.session, batch_estate, MONTH)
        batched = time.perf_counter() - started
        before = db.session.scalar(select(func.count(LedgerTransaction.id)))
        started = time.perf_counter()
        again = run_levies(db.session, batch_estate, MONTH)
        rerun = time.perf_counter() - started
        after = db.session.scalar(select(func.count(LedgerTransaction.id)))
        baseline = one_at_a_time(db.session, rows_estate, args.baseline)
        print(f"load after:  {load()}")
        sums = dict(db.session.execute(select(LevyCharge.definition_id, func.sum(LevyCharge.amount))
                                       .where(LevyCharge.estate_id == batch_estate.id)
                                       .group_by(LevyCharge.definition_id)).all())
        exact = all(sums.get(d.id) == d.amount for d in definitions_of(db.session, batch_estate))
        per_unit = db.session.execute(select(LevyCharge.unit_id, func.count()).where(
            LevyCharge.estate_id == batch_estate.id).group_by(LevyCharge.unit_id).having(func.count() != 3)).all()

    n = report.charged
    rate = args.baseline / baseline
    extrapolated = n / rate
    ratio = extrapolated / batched
    print(f"\nlevy run: {args.units:,} units x 3 levies = {n:,} charges (R {report.total:,})")
    print(f"  run_levies (post_many, one commit) {batched:7.2f} s  {n / batched:9,.0f} charges/s")
    print(f"  re-run of the same month           {rerun:7.2f} s  posted {again.charged} (already {again.already:,})")
    print(f"baseline, post() + commit per charge ({args.baseline:,} measured): {baseline:.2f} s, "
          f"{rate:,.0f} charges/s -> {extrapolated:,.0f} s for {n:,}")
    print(f"ratio: {ratio:.1f}x")
    print(f"goal <= 10 s: {'met' if batched <= 10 else 'NOT met'}; goal >= 10x baseline: "
          f"{'met' if ratio >= 10 else 'NOT met'}")
    ok = exact and not per_unit and after == before and again.charged == 0 and n == 3 * args.units
    print(f"shares add up to each levy: {exact}; every unit charged 3 times: {not per_unit}; "
          f"re-run posted nothing: {after == before}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
