"""Bulk top-up throughput: wallets credited per second by one batch against one commit per wallet.

Run from the repository root:  .venv/bin/python bench/bulk_topup.py [--wallets 5000] [--baseline 300]
Creates its own PostgreSQL database (BENCH_DATABASE_URL, default meterwise_bench_bulk_topup on
127.0.0.1), migrates it, seeds one ZAR estate whose units each have an electricity meter, a wallet
and a tenant with an email (so every credit makes a receipt). Receipts are queued on Redis
(BENCH_REDIS_URL, default database 5), never sent inline. It measures (a) the baseline: a
`credit_payment()` and a commit per wallet, as a payment webhook does; (b) one bulk top-up batch of
`--wallets` wallets through `run_bulk_topup()` (each wallet still one ledger transaction, CHUNK
wallets prepared and posted together by `credit_payments()` per commit, credit control once per
chunk, the chunk's receipts queued as one `payment_receipts` job); (c) the same batch run again,
which must post nothing.
It prints wallets/s, the ratio (b)/(a), whether the goals (≥ 300 wallets/s, ≥ 10× the baseline) are
met, and exits 1 unless every wallet was credited exactly once. The database is dropped afterwards.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.database import bench_config, drop_database, recreate_database  # noqa: E402
from sqlalchemy import func, make_url, select  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/meterwise_bench_bulk_topup"
DEFAULT_REDIS = "redis://127.0.0.1:6379/5"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wallets", type=int, default=5000, help="wallets in the batch")
    parser.add_argument("--baseline", type=int, default=300, help="wallets credited one commit at a time")
    args = parser.parse_args()
    url = make_url(os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    recreate_database(url)
    try:
        return run(url, args.wallets, args.baseline, os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS))
    finally:
        drop_database(url)


def seed(session, estate_model, count: int, offset: int):
    from app.models import Account, Meter, Person, Tenancy, Unit, Wallet

    estate = estate_model
    units = [Unit(estate_id=estate.id, number=f"U{offset + i:05d}", occupancy_status="occupied",
                  account_number=f"B{offset + i:06d}") for i in range(count)]
    session.add_all(units)
    session.flush()
    people = [Person(full_name=f"Tenant {u.number}", email=f"t{u.number.lower()}@example.test", estate_id=estate.id)
              for u in units]
    session.add_all(people)
    session.flush()
    session.add_all([Tenancy(unit_id=u.id, person_id=p.id, move_in=date.today() - timedelta(days=30))
                     for u, p in zip(units, people, strict=True)])
    session.add_all([Meter(estate_id=estate.id, unit_id=u.id, serial=f"{90_000_000 + offset + i}",
                           utility="electricity", role="unit", protocol="mqtt_direct")
                     for i, u in enumerate(units)])
    wallets = [Wallet(estate_id=estate.id, unit_id=u.id) for u in units]
    session.add_all(wallets)
    session.flush()
    session.add_all([Account(estate_id=estate.id, wallet_id=w.id, code=f"pocket:{u.number}:electricity",
                             name=f"Unit {u.number} electricity", kind="pocket", commodity="ZAR",
                             utility="electricity") for w, u in zip(wallets, units, strict=True)])
    session.flush()
    return units


def run(url, wallets: int, baseline: int, redis_url: str) -> int:
    from flask_migrate import upgrade
    from redis import Redis

    from app import create_app
    from app.extensions import db
    from app.models import Account, LedgerTransaction, Notification
    from app.models.payments import Payment
    from app.payments import bulk_topup
    from app.payments.credit import credit_payment
    from tests import factories

    config = bench_config(url)
    config.REDIS_URL = redis_url
    app = create_app(config)
    redis = Redis.from_url(redis_url)
    redis.flushdb()
    try:
        with app.app_context():
            upgrade()
            session = db.session
            estate = factories.make_estate(session, currency="ZAR", code="BULK")
            base_units = seed(session, estate, baseline, 0)
            batch_units = seed(session, estate, wallets, baseline)
            session.commit()
            base_ids = [u.id for u in base_units]

            started = time.perf_counter()
            for i, unit_id in enumerate(base_ids):
                payment = Payment(provider="eft", provider_ref=f"base{i}", unit_id=unit_id, utility="electricity",
                                  amount=Decimal("50.00"), status="to_confirm")
                session.add(payment)
                session.flush()
                credit_payment(session, payment)
                session.commit()
            base_seconds = time.perf_counter() - started

            rows = [(u, u.number, "electricity", "50.00") for u in batch_units]
            batch = bulk_topup.plan_bulk_topup(session, estate, rows)
            batch_id = batch.id
            session.expunge_all()
            started = time.perf_counter()
            done = bulk_topup.run_bulk_topup(session, batch_id)
            batch_seconds = time.perf_counter() - started
            credited = done.credited

            started = time.perf_counter()
            bulk_topup.run_bulk_topup(session, batch_id)
            replay_seconds = time.perf_counter() - started

            keys = session.scalar(select(func.count()).select_from(LedgerTransaction).where(
                LedgerTransaction.idempotency_key.like(f"agent:bulk:{batch_id}:%")))
            total = session.scalar(select(Account.balance).where(Account.code == "clearing:agent"))
            receipts = session.scalar(select(func.count()).select_from(Notification).where(
                Notification.template == "payment_receipt", Notification.status == "pending"))
            queued = sum(redis.llen(key) for key in redis.keys("rq:queue:*"))
            receipt_jobs = sum(1 for key in redis.keys("rq:job:*") if b"payment_receipts" in (redis.hget(key, "description") or b""))
    finally:
        redis.flushdb()

    base_rate = baseline / base_seconds
    batch_rate = wallets / batch_seconds
    ratio = batch_rate / base_rate
    print(f"baseline, credit_payment() + commit per wallet: {baseline} wallets in {base_seconds:.2f} s = {base_rate:,.0f} wallets/s")
    print(f"bulk top-up batch (run_bulk_topup -> credit_payments, {bulk_topup.CHUNK} wallets per commit): {wallets} wallets in "
          f"{batch_seconds:.2f} s = {batch_rate:,.0f} wallets/s")
    print(f"same batch again: {replay_seconds:.2f} s, {keys - credited} more transactions")
    print(f"ratio batch / baseline: {ratio:.1f}x")
    print(f"baseline receipts made and left pending: {receipts}; jobs waiting on Redis: {queued} "
          f"(of which payment_receipts jobs for the batch: {receipt_jobs})")
    print(f"goal >= 300 wallets/s: {'met' if batch_rate >= 300 else 'NOT met'}; "
          f"goal >= 10x baseline: {'met' if ratio >= 10 else 'NOT met'}")
    ok = credited == wallets and keys == wallets and total == -Decimal("50.00") * wallets
    print("every wallet credited exactly once:", "yes" if ok else "NO")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
