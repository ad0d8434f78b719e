"""Ledger throughput: one transaction per commit (a webhook) against post_many() batches (ingest).

Run from the repository root:  .venv/bin/python bench/ledger.py [--n 50000]
Creates its own PostgreSQL database (BENCH_DATABASE_URL, default meterwise_bench on
127.0.0.1), migrates it, posts, verifies, and drops it again, also on error. It prints
figures and never asserts times: the machine decides those.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.database import drop_database, recreate_database  # noqa: E402
from sqlalchemy import insert, make_url, select, text  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/meterwise_bench"
GOAL_TX_PER_S = 5000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="transactions in the batched pass")
    parser.add_argument("--single", type=int, default=2_000,
                        help="transactions in the one-at-a-time pass")
    parser.add_argument("--wallets", type=int, default=2_000, help="unit wallets in the estate")
    parser.add_argument("--batch", type=int, default=1_000, help="entries per post_many() call")
    parser.add_argument("--trigger-cost", action="store_true",
                        help="also run the batched pass with the deferred zero-sum trigger "
                             "disabled, to show what it costs (diagnostic only)")
    return parser.parse_args()


def build_estate(session, wallets: int) -> tuple[int, list[int], int]:
    """One ZAR estate with `wallets` units, each with an electricity pocket; returns ids."""
    from app.ledger.accounts import system_account
    from app.models import Account, Estate, Unit, Wallet

    estate = Estate(code="BENCH", name="Bench Estate", country="ZA", currency="ZAR",
                    timezone="Africa/Johannesburg")
    session.add(estate)
    session.flush()
    numbers = [f"U{i:05d}" for i in range(wallets)]
    unit_ids = session.scalars(
        insert(Unit).returning(Unit.id, sort_by_parameter_order=True),
        [{"estate_id": estate.id, "number": n} for n in numbers],
    ).all()
    wallet_ids = session.scalars(
        insert(Wallet).returning(Wallet.id, sort_by_parameter_order=True),
        [{"estate_id": estate.id, "unit_id": u} for u in unit_ids],
    ).all()
    pockets = session.scalars(
        insert(Account).returning(Account.id, sort_by_parameter_order=True),
        [{"estate_id": estate.id, "code": f"pocket:{n}:electricity", "name": f"Unit {n} electricity",
          "kind": "pocket", "commodity": "ZAR", "utility": "electricity", "wallet_id": w}
         for n, w in zip(numbers, wallet_ids, strict=True)],
    ).all()
    clearing = system_account(session, estate, "clearing", "payfast")
    session.commit()
    return estate.id, list(pockets), clearing.id


def topup(estate_id: int, key: str, pocket: int, clearing: int, i: int):
    from app.ledger import Entry

    amount = Decimal(f"{i % 500 + 1}.{i % 100:02d}")
    return Entry(estate_id=estate_id, kind="topup", idempotency_key=key,
                 legs=[(pocket, amount), (clearing, -amount)], memo="bench top-up")


def run_single(session, estate_id, pockets, clearing, count: int) -> float:
    from app.ledger import post

    started = time.perf_counter()
    for i in range(count):
        posted = post(session, topup(estate_id, f"bench:single:{i}", pockets[i % len(pockets)],
                                     clearing, i))
        session.commit()
        assert posted.created
    return time.perf_counter() - started


def run_batched(session, estate_id, pockets, clearing, count: int, batch: int,
                prefix: str = "bench:batch") -> tuple[float, int, float]:
    """Post `count` top-ups in post_many() batches; returns seconds, created, seconds in COMMIT."""
    from app.ledger import post_many

    created = 0
    committing = 0.0
    started = time.perf_counter()
    for start in range(0, count, batch):
        entries = [topup(estate_id, f"{prefix}:{i}", pockets[i % len(pockets)], clearing, i)
                   for i in range(start, min(start + batch, count))]
        created += sum(p.created for p in post_many(session, entries))
        before_commit = time.perf_counter()
        session.commit()
        committing += time.perf_counter() - before_commit
    return time.perf_counter() - started, created, committing


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f} tx/s" if seconds > 0 else "n/a"


def main() -> int:
    args = parse_args()
    url = make_url(os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    if url.get_backend_name() != "postgresql":
        print("bench/ledger.py needs PostgreSQL (BENCH_DATABASE_URL)", file=sys.stderr)
        return 2

    import logging

    from flask_migrate import upgrade

    from app import create_app
    from app.config import Config

    class BenchConfig(Config):
        SECRET_KEY = "bench"
        SQLALCHEMY_DATABASE_URI = url.render_as_string(hide_password=False)
        SQLALCHEMY_ENGINE_OPTIONS = {}

    print(f"database: {url.render_as_string(hide_password=True)}  (created for this run, dropped after)")
    recreate_database(url)
    try:
        app = create_app(BenchConfig)
        with app.app_context():
            from app.extensions import db
            from app.ledger.verify import summarise, verify_ledger
            from app.models import LedgerTransaction

            try:
                logging.disable(logging.INFO)  # Alembic's per-revision lines
                try:
                    upgrade()
                finally:
                    logging.disable(logging.NOTSET)
                session = db.session
                started = time.perf_counter()
                estate_id, pockets, clearing = build_estate(session, args.wallets)
                print(f"setup: 1 estate (ZAR), {len(pockets):,} unit pockets, 1 clearing account "
                      f"in {time.perf_counter() - started:.2f}s")

                single_s = run_single(session, estate_id, pockets, clearing, args.single)
                single_rate = args.single / single_s
                print(f"(a) one at a time: {args.single:,} post() + commit each in {single_s:.2f}s "
                      f"= {rate(args.single, single_s)}")

                batched_s, created, commit_s = run_batched(session, estate_id, pockets, clearing,
                                                           args.n, args.batch)
                batched_rate = args.n / batched_s
                print(f"(b) batched: {args.n:,} via post_many() in batches of {args.batch:,}, "
                      f"commit per batch, in {batched_s:.2f}s = {rate(args.n, batched_s)} "
                      f"({created:,} created)")
                print(f"    of which COMMIT (the deferred zero-sum trigger runs there, once per "
                      f"posting): {commit_s:.2f}s = {commit_s / batched_s:.0%}")

                replay_s, replay_created, _ = run_batched(session, estate_id, pockets, clearing,
                                                          args.n, args.batch)
                print(f"replay: the same {args.n:,} keys again in {replay_s:.2f}s = "
                      f"{rate(args.n, replay_s)}, {replay_created} new transactions "
                      f"({'OK' if replay_created == 0 else 'WRONG: replays must write nothing'})")

                if args.trigger_cost:
                    # Same size, back to back, both after an ALTER TABLE (which drops cached
                    # plans), so the two passes differ only in the trigger.
                    session.execute(text("ALTER TABLE postings DISABLE TRIGGER postings_zero_sum"))
                    session.commit()
                    try:
                        bare_s, _, _ = run_batched(session, estate_id, pockets, clearing, args.n,
                                                   args.batch, prefix="bench:without-trigger")
                    finally:
                        session.execute(text("ALTER TABLE postings ENABLE TRIGGER postings_zero_sum"))
                        session.commit()
                    with_s, _, _ = run_batched(session, estate_id, pockets, clearing, args.n,
                                               args.batch, prefix="bench:with-trigger")
                    print(f"diagnostic: batched without the zero-sum trigger {rate(args.n, bare_s)}, "
                          f"with it {rate(args.n, with_s)} (passes of {args.n:,} after the above)")

                ratio = batched_rate / single_rate
                print(f"ratio batched / one at a time: {ratio:.1f}x")
                verdict = "MET" if batched_rate >= GOAL_TX_PER_S else "NOT MET"
                print(f"goal batched >= {GOAL_TX_PER_S:,} tx/s: {verdict} ({batched_rate:,.0f} tx/s)")

                total = session.scalar(select(db.func.count()).select_from(LedgerTransaction))
                started = time.perf_counter()
                report = verify_ledger(session)
                verify_s = time.perf_counter() - started
                session.rollback()
                outcome = summarise(report).splitlines()
                print(f"verify_ledger: {'OK' if report.ok else 'BROKEN'} over {total:,} transactions "
                      f"in {verify_s:.2f}s ({rate(total, verify_s)})")
                for line in outcome[:5]:
                    print(f"  {line}")
                return 0 if report.ok and replay_created == 0 else 1
            finally:
                db.session.remove()
                db.engine.dispose()
    finally:
        drop_database(url)
        print(f"dropped database {url.database}")


if __name__ == "__main__":
    sys.exit(main())
