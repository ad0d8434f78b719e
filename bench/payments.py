"""PayFast ITN throughput: genuine ITNs credited per second, replays per second, and 8 threads.

Run from the repository root:  .venv/bin/python bench/payments.py [--n 500]
Creates its own PostgreSQL database (BENCH_DATABASE_URL, default meterwise_bench_payments on
127.0.0.1), migrates it, drives POST /webhooks/payfast/itn through the whole Flask stack
(signature, source, amount, row lock, ledger post, receipt, commit; gateway confirmation off),
checks that every payment was credited exactly once, and drops the database, also on error.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.database import drop_database, recreate_database  # noqa: E402
from sqlalchemy import func, make_url, select  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/meterwise_bench_payments"
PASSPHRASE = "bench-passphrase"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="ITNs in the sequential pass")
    args = parser.parse_args()
    url = make_url(os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    recreate_database(url)
    try:
        return run(url.render_as_string(hide_password=False), args.n)
    finally:
        drop_database(url)


def run(database_url: str, n: int) -> int:
    from flask_migrate import upgrade

    from app import create_app
    from app.config import Config
    from app.extensions import db
    from app.models import LedgerTransaction
    from app.models.payments import Payment
    from app.payments import payfast
    from tests import factories
    from tests.emulators.payfast import PayfastState

    class BenchConfig(Config):
        SQLALCHEMY_DATABASE_URI = database_url
        PAYFAST_PASSPHRASE = PASSPHRASE
        PAYFAST_VALIDATE_URL = ""
        PAYFAST_VALID_SOURCES = "127.0.0.1"
        SECRET_KEY = "bench"

    app = create_app(BenchConfig)
    with app.app_context():
        upgrade()
        kit = factories.make_estate_with_wallet(db.session)
        factories.make_meter(db.session, kit.unit)  # a checkout tops up a pocket the unit has a meter of
        user = factories.make_user(db.session, "tenant", unit=kit.unit)
        settings = payfast.PayfastSettings.from_config(app.config)
        gateway = PayfastState(PASSPHRASE)
        total = n * 2 + 8 * 50
        itns = []
        for _ in range(total):
            _, fields = payfast.start_checkout(
                db.session, settings, unit=kit.unit, utility="electricity", amount="100", user=user,
                return_url="http://x/r", cancel_url="http://x/c", notify_url="http://x/n")
            itns.append(urlencode(gateway.make_itn(fields)))
        db.session.commit()
        db.session.remove()

    client = app.test_client()

    def deliver(body: str) -> int:
        return client.post("/webhooks/payfast/itn", data=body,
                           content_type="application/x-www-form-urlencoded").status_code

    fresh, later, threaded = itns[:n], itns[n:2 * n], itns[2 * n:]
    deliver(later[0])  # warm-up: first requests compile templates and plans
    started = time.perf_counter()
    codes = [deliver(body) for body in fresh]
    fresh_rate = n / (time.perf_counter() - started)
    started = time.perf_counter()
    codes += [deliver(body) for body in fresh]
    replay_rate = n / (time.perf_counter() - started)

    chunks = [threaded[i::8] for i in range(8)]
    answers: list[int] = []

    def worker(bodies: list[str]) -> None:
        own = app.test_client()
        for body in bodies:
            answers.append(own.post("/webhooks/payfast/itn", data=body,
                                    content_type="application/x-www-form-urlencoded").status_code)
            answers.append(own.post("/webhooks/payfast/itn", data=body,  # and its duplicate
                                    content_type="application/x-www-form-urlencoded").status_code)

    threads = [threading.Thread(target=worker, args=(chunk,)) for chunk in chunks]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    threaded_rate = len(threaded) / (time.perf_counter() - started)

    with app.app_context():
        credited = db.session.scalar(select(func.count()).select_from(Payment)
                                     .where(Payment.status == "credited"))
        postings = db.session.scalar(select(func.count()).select_from(LedgerTransaction))
        db.session.remove()
        db.engine.dispose()
    expected = n + 1 + len(threaded)
    print(f"ITNs credited, one at a time (baseline): {fresh_rate:8.1f}/s  (n={n})")
    print(f"replayed ITNs answered 200, nothing posted: {replay_rate:8.1f}/s  "
          f"ratio replay/fresh {replay_rate / fresh_rate:.1f}x")
    print(f"8 threads, each ITN delivered twice: {threaded_rate:8.1f} credited/s  "
          f"ratio threaded/baseline {threaded_rate / fresh_rate:.1f}x")
    ok = set(codes) | set(answers) == {200} and credited == expected and postings == expected
    print(f"credited payments {credited}, ledger transactions {postings}, expected {expected}: "
          f"{'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
