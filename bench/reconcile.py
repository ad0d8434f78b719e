"""Daily reconciliation (U6) of one estate's day: set-based checks vs a per-item query loop.

Run from the repository root:  .venv/bin/python bench/reconcile.py [--meters 2000] [--payments 5000] [--sample 5000]
                               [--vendor-units 500]
Creates its own PostgreSQL database (BENCH_DATABASE_URL, default meterwise_bench_reconcile on
127.0.0.1), migrates it, and builds one ZAR estate's day: --meters unit meters with 48 half-hourly
readings each and their bills posted through the ledger (96,000 for 2,000 meters), a bulk meter,
and --payments M-PESA payments credited through the ledger with their confirmation SMS; the first
--vendor-units units also have a SparkMeter meter, so their payments were pushed to Koios and each
is listed by Koios (the pushes-vs-Koios check). Measures (a) the baseline: the same checks item
by item, one query per reading (its bill by key), two per payment (its SMS, its ledger legs), one
per push (its Koios payment) and one per transaction (its postings for the hash), timed on
--sample items of each kind and extrapolated to all of them; (b) `reconcile_estate`, every check
of the day with set-based queries, stored. Prints items, seconds, the ratio, whether the day
passed (exit 1 if not), and whether the goals "<= 5 s" and ">= 10x the baseline" are met. Drops
the database afterwards, also on error. Never asserts times.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.database import bench_config, drop_database, recreate_database  # noqa: E402
from sqlalchemy import insert, make_url, select, text  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/meterwise_bench_reconcile"
GOAL_SECONDS = 5
GOAL_RATIO = 10


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=2000)
    parser.add_argument("--payments", type=int, default=5000)
    parser.add_argument("--vendor-units", type=int, default=500,
                        help="units also metered by SparkMeter: their payments are pushed and listed by Koios")
    parser.add_argument("--sample", type=int, default=5000, help="items of each kind the baseline times")
    parser.add_argument("--profile", action="store_true", help="print where (b) spends its time")
    parser.add_argument("--per-check", action="store_true", help="run each check once more alone and time it")
    return parser.parse_args()


def build_day(session, meters: int, payments: int, vendor_units: int = 0):
    """The estate, its local day and its start: readings, bills, payments and SMS of that day."""
    from app.analytics.daily_reconciliation import day_bounds, reading_key
    from app.ledger import Entry, post_many
    from app.ledger.accounts import open_wallet, system_account
    from app.models import Estate, Meter, Reading, Unit
    from app.models.payments import Payment, SmsMessage
    from app.models.sources import KoiosPayment

    estate = Estate(code="BENCH", name="Bench Estate", country="ZA", currency="ZAR", timezone="Africa/Johannesburg")
    session.add(estate)
    session.flush()
    day = (datetime.now(UTC).astimezone(estate.tz) - timedelta(days=1)).date()
    start, _ = day_bounds(estate, day)
    revenue = system_account(session, estate, "revenue", "electricity", utility="electricity")
    clearing = system_account(session, estate, "clearing", "mpesa")
    units = [Unit(estate_id=estate.id, number=f"U{i:05d}", occupancy_status="occupied") for i in range(meters)]
    session.add_all(units)
    session.flush()
    meter_rows = [Meter(estate_id=estate.id, unit_id=u.id, serial=f"{20_000_000 + i}", utility="electricity")
                  for i, u in enumerate(units)]
    bulk = Meter(estate_id=estate.id, unit_id=None, serial="99999999", utility="electricity", role="bulk")
    session.add_all([*meter_rows, bulk])
    session.flush()
    pockets = {u.id: open_wallet(session, u, ("electricity",)).pocket("electricity").id for u in units}
    readings, entries, total = [], [], Decimal(0)
    for m in meter_rows:
        for n in range(48):
            moment = start + timedelta(minutes=30 * (n + 1))
            used = Decimal(50 + (m.id * 7 + n * 13) % 400) / 1000
            total += used
            readings.append({"meter_id": m.id, "taken_at": moment, "register": Decimal(1000) + used * n,
                             "consumption": used})
            charge = (used * Decimal("2.85")).quantize(Decimal("0.01")) or Decimal("0.01")
            entries.append(Entry(estate.id, "consumption", reading_key(m.serial, moment),
                                 [(pockets[m.unit_id], -charge), (revenue.id, charge)], occurred_at=moment,
                                 memo=f"Electricity {used} kWh on meter {m.serial}"))
    for n in range(48):
        readings.append({"meter_id": bulk.id, "taken_at": start + timedelta(minutes=30 * (n + 1)),
                         "register": Decimal(n), "consumption": (total / 48 * Decimal("1.05")).quantize(Decimal("0.001"))})
    for i in range(0, len(readings), 10_000):
        session.execute(insert(Reading), readings[i:i + 10_000])
    payment_rows, sms_rows = [], []
    vendor = {u.id for u in units[:vendor_units]}
    if vendor:  # a second, SparkMeter meter on these units: billed at SparkMeter, so no readings here
        session.add_all([Meter(estate_id=estate.id, unit_id=u.id, serial=f"SM{i:08d}", utility="electricity",
                               protocol="sparkmeter") for i, u in enumerate(units[:vendor_units])])
        session.flush()
    for i in range(payments):
        unit = units[i % meters]
        ref = f"QB{i:08d}"
        amount = Decimal(50 + i % 200)
        moment = start + timedelta(seconds=10 + i * 15)
        entries.append(Entry(estate.id, "topup", f"mpesa:{ref}", [(clearing.id, -amount), (pockets[unit.id], amount)],
                             occurred_at=moment, memo=f"M-PESA top-up {amount} ({ref})"))
        payment_rows.append({"provider": "mpesa", "provider_ref": ref, "unit_id": unit.id, "estate_id": estate.id,
                             "utility": "electricity", "amount": amount, "currency": "ZAR", "status": "credited",
                             "paid_at": moment, "credited_at": moment, "created_at": moment,
                             "vendor_push_status": "pushed" if unit.id in vendor else None})
    for i in range(0, len(entries), 5000):
        post_many(session, entries[i:i + 5000])
        session.commit()
    ids = dict(session.execute(select(text("idempotency_key"), text("id")).select_from(text("ledger_transactions"))
                               .where(text("kind = 'topup'"))).all())
    for row in payment_rows:
        row["transaction_id"] = ids[f"mpesa:{row['provider_ref']}"]
    session.execute(insert(Payment), payment_rows)
    payment_ids = dict(session.execute(select(Payment.provider_ref, Payment.id)).all())
    for row in payment_rows:
        ref = row["provider_ref"]
        sms_rows.append({"gateway_id": f"g-{ref}", "from_number": "MPESA", "outcome": "payment",
                         "payment_id": payment_ids[ref], "received_at": row["paid_at"],
                         "content": f"{ref} Confirmed. on 1/1/26 at 8:59 AM R{row['amount']}.00 received from "
                                    f"27821234567 - Bench Payer 27821234567.New M-Pesa balance is R1.00 Reference: {ref}."})
    session.execute(insert(SmsMessage), sms_rows)
    koios_rows = [{"koios_id": f"kp-{payment_ids[row['provider_ref']]}", "origin": "meterwise",
                   "customer_code": f"C-{row['unit_id']}", "amount": row["amount"], "currency": "ZAR",
                   "paid_at": row["paid_at"] + timedelta(seconds=5),
                   "external_id": f"meterwise:{payment_ids[row['provider_ref']]}",
                   "payment_id": payment_ids[row["provider_ref"]], "estate_id": estate.id, "unit_id": row["unit_id"],
                   "imported_at": row["paid_at"]} for row in payment_rows if row["vendor_push_status"]]
    if koios_rows:
        session.execute(insert(KoiosPayment), koios_rows)
    session.commit()
    return estate, day, start


def baseline(session, estate, start, end, sample: int) -> tuple[float, int]:
    """The per-item way on `sample` items of each kind, extrapolated; returns (seconds, items in all)."""
    from app.analytics.daily_reconciliation import reading_key
    from app.models import LedgerTransaction, Meter, Posting, Reading
    from app.models.payments import Payment, SmsMessage
    from app.models.sources import KoiosPayment

    readings = session.execute(select(Meter.serial, Reading.taken_at).join(Reading, Reading.meter_id == Meter.id)
                               .where(Meter.estate_id == estate.id, Meter.role == "unit",
                                      Reading.taken_at >= start, Reading.taken_at < end)).all()
    payments = session.scalars(select(Payment).where(Payment.estate_id == estate.id)).all()
    txn_ids = session.scalars(select(LedgerTransaction.id).where(LedgerTransaction.estate_id == estate.id)).all()
    seconds = 0.0
    started = time.perf_counter()
    for serial, taken_at in readings[:sample]:
        session.scalar(select(LedgerTransaction.id).where(LedgerTransaction.idempotency_key == reading_key(serial, taken_at)))
    seconds += (time.perf_counter() - started) * len(readings) / max(1, min(sample, len(readings)))
    started = time.perf_counter()
    for p in payments[:sample]:
        session.scalar(select(SmsMessage.content).where(SmsMessage.payment_id == p.id))
        session.execute(select(Posting.amount).where(Posting.transaction_id == p.transaction_id)).all()
    seconds += (time.perf_counter() - started) * len(payments) / max(1, min(sample, len(payments)))
    pushed = [p for p in payments if p.vendor_push_status]
    started = time.perf_counter()
    for p in pushed[:sample]:  # each push: its Koios payment
        session.execute(select(KoiosPayment.koios_id, KoiosPayment.amount).where(KoiosPayment.payment_id == p.id)).all()
    seconds += (time.perf_counter() - started) * len(pushed) / max(1, min(sample, len(pushed)))
    started = time.perf_counter()
    for transaction_id in txn_ids[:sample]:
        session.execute(select(Posting.account_id, Posting.amount).where(Posting.transaction_id == transaction_id)).all()
    seconds += (time.perf_counter() - started) * len(txn_ids) / max(1, min(sample, len(txn_ids)))
    return seconds, len(readings) + len(payments) + len(pushed) + len(txn_ids)


def main() -> int:
    args = parse_args()
    url = make_url(os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    if url.get_backend_name() != "postgresql":
        print("bench/reconcile.py needs PostgreSQL (BENCH_DATABASE_URL)", file=sys.stderr)
        return 2
    from flask_migrate import upgrade

    from app import create_app

    print(f"database: {url.render_as_string(hide_password=True)}  (created for this run, dropped after)")
    recreate_database(url)
    try:
        app = create_app(bench_config(url))
        with app.app_context():
            from app.analytics.daily_reconciliation import day_bounds, reconcile_estate
            from app.extensions import db

            logging.disable(logging.INFO)
            upgrade()
            started = time.perf_counter()
            estate, day, start = build_day(db.session, args.meters, args.payments, args.vendor_units)
            db.session.execute(text("ANALYZE"))
            db.session.commit()
            print(f"built {args.meters:,} meters x 48 readings with bills and {args.payments:,} payments "
                  f"({args.vendor_units:,} units also on SparkMeter, their payments pushed and listed by Koios) "
                  f"in {time.perf_counter() - started:.1f}s")
            _, end = day_bounds(estate, day)
            base_s, items = baseline(db.session, estate, start, end, args.sample)
            print(f"(a) baseline, per-item queries ({args.sample:,} of each kind timed, extrapolated): "
                  f"{items:,} items in {base_s:.2f}s")
            profiler = None
            if args.profile:
                import cProfile
                profiler = cProfile.Profile()
                profiler.enable()
            started = time.perf_counter()
            results = reconcile_estate(db.session, estate, day)
            fast_s = time.perf_counter() - started
            if profiler is not None:
                import pstats
                profiler.disable()
                pstats.Stats(profiler).sort_stats("tottime").print_stats(12)
            print(f"(b) reconcile_estate, set-based: {fast_s:.2f}s (x{base_s / fast_s:.1f} the baseline)")
            for r in results:
                print(f"    {r.check:<9} {'pass' if r.ok else 'FAIL'}  {r.summary}")
            passed = all(r.ok for r in results)
            if args.per_check:
                from app.analytics.daily_reconciliation import CHECKS
                timings = []
                for name, check in CHECKS:
                    started = time.perf_counter()
                    check(db.session, estate, start, end)
                    timings.append(f"{name} {time.perf_counter() - started:.2f}s")
                print("    each check again, alone: " + ", ".join(timings))
            print(f"goal <= {GOAL_SECONDS} s: {'met' if fast_s <= GOAL_SECONDS else 'NOT met'}; "
                  f"goal >= {GOAL_RATIO}x the baseline: {'met' if base_s / fast_s >= GOAL_RATIO else 'NOT met'}")
            db.session.remove()
            return 0 if passed else 1
    finally:
        with create_app(bench_config(url)).app_context():
            from app.extensions import db
            db.engine.dispose()
        drop_database(url)


if __name__ == "__main__":
    sys.exit(main())
