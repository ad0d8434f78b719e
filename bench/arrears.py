"""Benchmark the daily arrears job (A4): aging from the ledger and the escalation ladder.

    .venv/bin/python bench/arrears.py [--pockets 100000] [--debt-share 0.10] [--days 180]

Creates `meterwise_bench_arrears` (BENCH_DATABASE_URL overrides it; dropped afterwards), migrates
it and loads with COPY one estate of `--pockets` units, each with a wallet and an electricity
pocket. `--debt-share` of them are in debt: each has `--days` days of daily postings (an opening
top-up, then a daily charge) and went below zero on a different day; the others hold one top-up.
The fixture's cached "in debt since" (`accounts.in_debt_since`, kept by app.ledger with each
posting) is filled as migration 0045a fills an existing database: its `backfill()` over the
postings (timed and printed apart from the fixture load).
It measures (a) the baseline: a per-pocket loop, one query per indebted pocket reading its
postings in order and walking them in Python to find when it last went below zero; (b) the
job's aging, `app.billing.debt.debts()`, which reads each pocket's kept date; (c) the first
ladder run, which applies every step the ages call for (warnings, restrictions, escalation
tasks: audit rows and episodes for every debtor); (d) the daily run after it, which finds
nothing new to do. It prints seconds and the ratio (a)/(b), checks that (a), the kept dates,
(b) and the recomputation `ledger verify` uses found the same "in debt since" for every pocket
(exit 1 if not), and whether the goals "daily job ≤ 10 s"
and "≥ 10x the baseline" are met. Ledger triggers are off while loading (a bench fixture, not
posted through app.ledger); the queries measured run with them in place.
"""
from __future__ import annotations

import argparse
import io
from contextlib import contextmanager
import os
import random
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from time import perf_counter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench.database import bench_config, drop_database, recreate_database  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/meterwise_bench_arrears"


def copy_rows(cursor, statement: str, lines) -> int:
    """COPY text lines in chunks of about 8 MB."""
    count = 0
    with cursor.copy(statement) as copy:
        buffer = io.StringIO()
        for line in lines:
            buffer.write(line)
            count += 1
            if buffer.tell() > 8_000_000:
                copy.write(buffer.getvalue())
                buffer = io.StringIO()
        copy.write(buffer.getvalue())
    return count


def load(session, estate, revenue_id: int, pockets: int, debt_share: float, days: int, now: datetime):
    """Units, wallets, pockets and postings by COPY; returns {pocket id: expected since}."""
    rng = random.Random(16)
    # Read before COPY starts: an expired attribute loaded lazily mid-COPY would wait for the very
    # connection that is copying (the hang that stopped the earlier runs).
    estate_id = estate.id
    connection = session.connection().connection.driver_connection
    cursor = connection.cursor()
    cursor.execute("SET session_replication_role = replica")  # no triggers while loading the fixture
    base = 1_000_000
    start = now - timedelta(days=days)
    stamp = now.isoformat()
    every = max(1, round(1 / debt_share)) if debt_share > 0 else 0
    indebted = [i for i in range(pockets) if every and i % every == 0]
    copy_rows(cursor, "COPY units (id, estate_id, number, occupancy_status, created_at) FROM STDIN",
              (f"{base + i}\t{estate_id}\tB{i:06d}\toccupied\t{stamp}\n" for i in range(pockets)))
    copy_rows(cursor, "COPY wallets (id, estate_id, unit_id, created_at) FROM STDIN",
              (f"{base + i}\t{estate_id}\t{base + i}\t{stamp}\n" for i in range(pockets)))
    opening = {i: 10 * rng.randint(1, days - 10) for i in indebted}  # went negative on day k + 1
    debt_set = set(indebted)

    def balance(i: int) -> int:
        return opening[i] - 10 * (days - 1) if i in debt_set else 100

    copy_rows(cursor, "COPY accounts (id, estate_id, code, name, kind, commodity, utility, wallet_id, balance, "
              "created_at) FROM STDIN",
              (f"{base + i}\t{estate_id}\tpocket:B{i:06d}:electricity\tB{i:06d} electricity\tpocket\tZAR\t"
               f"electricity\t{base + i}\t{balance(i)}\t{stamp}\n" for i in range(pockets)))
    expected = {}
    seq = [0]

    def transactions():
        for i in range(pockets):
            moments = [start] if i not in debt_set else [start + timedelta(days=d) for d in range(days)]
            for day, moment in enumerate(moments):
                seq[0] += 1
                amount = (opening[i] if day == 0 else -10) if i in debt_set else 100
                if i in debt_set and day == opening[i] // 10 + 1:
                    expected[base + i] = moment
                yield seq[0], i, moment, amount

    tx_lines, posting_lines = io.StringIO(), io.StringIO()
    tx_count = posting_count = 0
    with cursor.copy("COPY ledger_transactions (id, estate_id, seq, kind, idempotency_key, occurred_at, "
                     "recorded_at, period, memo, prev_hash, hash) FROM STDIN") as tx_copy:
        for number, i, moment, amount in transactions():
            at = moment.isoformat()
            tx_lines.write(f"{number}\t{estate_id}\t{number}\t{'topup' if amount > 0 else 'consumption'}\t"
                           f"bench:{number}\t{at}\t{at}\t{moment:%Y-%m}\t\t{'0' * 64}\t{'0' * 64}\n")
            posting_lines.write(f"{2 * number - 1}\t{number}\t{base + i}\t{amount}\tZAR\n"
                                f"{2 * number}\t{number}\t{revenue_id}\t{-amount}\tZAR\n")
            tx_count += 1
            posting_count += 2
            if tx_lines.tell() > 8_000_000:
                tx_copy.write(tx_lines.getvalue())
                tx_lines = io.StringIO()
        tx_copy.write(tx_lines.getvalue())
    copy_rows(cursor, "COPY postings (id, transaction_id, account_id, amount, commodity) FROM STDIN",
              io.StringIO(posting_lines.getvalue()))
    total = sum(balance(i) for i in range(pockets))
    cursor.execute("UPDATE accounts SET balance = %s WHERE id = %s", (-total, revenue_id))
    cursor.execute("UPDATE ledger_chains SET last_seq = %s WHERE estate_id = %s", (seq[0], estate_id))
    for table in ("units", "wallets", "accounts", "ledger_transactions", "postings"):
        cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    cursor.execute("SET session_replication_role = origin")
    session.commit()
    return expected, tx_count, posting_count


@contextmanager
def profiled(wanted: bool):
    """Print the 40 most expensive calls (cumulative) of the block, when wanted."""
    if not wanted:
        yield
        return
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)


def migration_backfill():
    """`backfill(connection)` of migration 0045a (the function that dates existing pockets' debts)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "migrations" / "versions" / "0045a_in_debt_since.py"
    spec = importlib.util.spec_from_file_location("migration_0045a", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.backfill


def per_pocket_loop(session, pocket_ids: list[int]) -> dict[int, datetime]:
    """The baseline: one query per pocket, walking its postings in order."""
    from app.models import LedgerTransaction, Posting

    found = {}
    for pocket_id in pocket_ids:
        running, since = Decimal("0"), None
        for amount, moment in session.execute(
                select(Posting.amount, LedgerTransaction.occurred_at)
                .join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id)
                .where(Posting.account_id == pocket_id)
                .order_by(LedgerTransaction.occurred_at, LedgerTransaction.id, Posting.id)):
            before, running = running, running + amount
            if before >= 0 > running:
                since = moment
        if running < 0 and since is not None:
            found[pocket_id] = since
    return found


def main() -> int:
    import faulthandler
    if os.environ.get("BENCH_TRACE"):
        faulthandler.dump_traceback_later(int(os.environ["BENCH_TRACE"]), exit=True)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pockets", type=int, default=100_000)
    parser.add_argument("--debt-share", type=float, default=0.10)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--keep-database", action="store_true",
                        help="reuse the database (drop its schema before and after) instead of creating and "
                             "dropping it: no checkpoint wait")
    parser.add_argument("--profile", choices=("first", "daily"), help="print a profile of that ladder run")
    args = parser.parse_args()
    url = make_url(os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    if args.keep_database:
        reset_schema(url)
    else:
        recreate_database(url)
    try:
        return run(url, args)
    finally:
        if args.keep_database:
            reset_schema(url, recreate=False)
        else:
            drop_database(url)


def reset_schema(url, recreate: bool = True) -> None:
    """Empty the bench database by dropping its schema (created if missing), never the database.

    DROP DATABASE waits for a checkpoint, which takes minutes when the shared machine is I/O-bound
    (the runs of the previous session hung there); dropping a schema does not."""
    from sqlalchemy import create_engine

    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        if not connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"),
                                  {"name": url.database}).scalar():
            connection.execute(text(f'CREATE DATABASE "{url.database}"'))
    admin.dispose()
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        if recreate:
            connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def run(url, args) -> int:
    from flask_migrate import upgrade

    from app import create_app
    from app.billing.debt import debts, pockets_in_debt_since
    from app.billing.ladder import run_ladder
    from app.extensions import db
    from app.ledger.accounts import system_account
    from app.models import Account, Estate

    app = create_app(bench_config(url))
    with app.app_context():
        upgrade(directory=str(Path(__file__).resolve().parents[1] / "migrations"))
        session = db.session
        estate = Estate(code="BEN", name="Bench Estate", country="ZA", currency="ZAR", currency_minor_units=2,
                        timezone="Africa/Johannesburg")
        session.add(estate)
        session.flush()
        revenue = system_account(session, estate, "revenue", "electricity", utility="electricity")
        from app.models import LedgerChain
        session.add(LedgerChain(estate_id=estate.id, last_seq=0, last_hash="0" * 64))
        session.commit()
        now = datetime.now(UTC).replace(microsecond=0)
        started = perf_counter()
        expected, tx_count, posting_count = load(session, estate, revenue.id, args.pockets, args.debt_share,
                                                 args.days, now)
        loaded = perf_counter() - started
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE units, wallets, accounts, ledger_transactions, postings"))
        print(f"fixture: {args.pockets} pockets, {len(expected)} in debt, {tx_count} transactions, "
              f"{posting_count} postings loaded by COPY in {loaded:.1f} s")
        started = perf_counter()
        migration_backfill()(session.connection())
        session.commit()
        print(f"fixture: 'in debt since' backfilled from the postings as migration 0045a does in "
              f"{perf_counter() - started:.1f} s")
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE accounts"))
        kept = dict(session.execute(select(Account.id, Account.in_debt_since).where(
            Account.kind == "pocket", Account.in_debt_since.is_not(None))).all())
        session.rollback()
        indebted = list(session.scalars(select(Account.id).where(Account.kind == "pocket", Account.balance < 0)))

        started = perf_counter()
        baseline = per_pocket_loop(session, indebted)
        baseline_s = perf_counter() - started
        session.rollback()

        started = perf_counter()
        found = debts(session, [estate], now=now)
        aging_s = perf_counter() - started
        since = pockets_in_debt_since(session, indebted)
        session.rollback()

        started = perf_counter()
        with profiled(args.profile == "first"):
            first = run_ladder(session, estate, now=now)
            session.commit()
        first_s = perf_counter() - started
        started = perf_counter()
        with profiled(args.profile == "daily"):
            daily = run_ladder(session, estate, now=now + timedelta(hours=6))
            session.commit()
        daily_s = perf_counter() - started

        from app.ledger.verify import _debt_since_mismatches
        started = perf_counter()
        mismatches = _debt_since_mismatches(session, estate.id)
        check_s = perf_counter() - started
        session.rollback()
        aged = {debt.account_id: debt.since for debt in found}
        local = {pocket: moment.astimezone(estate.tz).date() for pocket, moment in expected.items()}
        agree = baseline == since == kept == expected and aged == local and not mismatches
        print(f"(a) baseline, per-pocket loop over {len(indebted)} indebted pockets: {baseline_s:.2f} s")
        print(f"(b) aging, debts() over the estate: {aging_s:.2f} s  ({len(found)} debts)")
        print(f"(c) first ladder run (aging + every step due): {first_s:.2f} s  ({first.summary()})")
        print(f"(d) daily ladder run after it (aging + nothing new): {daily_s:.2f} s  ({daily.summary()})")
        print(f"ledger verify's 'in debt since' check over all {args.pockets} pockets: {check_s:.2f} s "
              f"({len(mismatches)} mismatches)")
        print(f"ratio baseline / aging: {baseline_s / aging_s:.1f}x; baseline / daily run: {baseline_s / daily_s:.1f}x")
        print(f"same 'in debt since' from the baseline, the kept dates, the aging, verify's recomputation "
              f"and the fixture: {'yes' if agree else 'NO'}")
        print(f"goal daily job <= 10 s: {'met' if daily_s <= 10 else 'not met'}; "
              f">= 10x baseline: {'met' if baseline_s / aging_s >= 10 else 'not met'} (aging), "
              f"{'met' if baseline_s / daily_s >= 10 else 'not met'} (daily run)")
        return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
