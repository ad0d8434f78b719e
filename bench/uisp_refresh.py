"""UISP refresh: bulk paged listing (the refresh job) against the per-customer way (baseline).

Run from the repository root:  .venv/bin/python bench/uisp_refresh.py [--clients 10000]
Starts the UISP emulator with `--clients` clients and `--latency-ms` per HTTP call, creates
its own PostgreSQL database (BENCH_DATABASE_URL, default meterwise_bench_sources on
127.0.0.1), migrates it, runs the refresh twice (the second must write nothing) and drops the
database again, also on error. The baseline (5 serial calls per customer: client, active
services, suspended services, invoices, payments; no database work) is MEASURED on a sample
of `--sample` customers and EXTRAPOLATED to all of them. Prints figures; asserts no times.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.database import drop_database, recreate_database  # noqa: E402
from sqlalchemy import make_url  # noqa: E402
from werkzeug.serving import WSGIRequestHandler, make_server  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/meterwise_bench_sources"
GOAL_CALL_RATIO, GOAL_SECONDS = 0.01, 30.0


class QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:
        pass


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--sample", type=int, default=200, help="customers in the baseline sample")
    parser.add_argument("--page-size", type=int, default=1000)
    return parser.parse_args()


def baseline(api, emulator, sample: int) -> tuple[int, float]:
    """Per-customer refresh of `sample` customers, serial: returns (calls, seconds)."""
    before, started = emulator.calls, time.perf_counter()
    for client_id in range(1, sample + 1):
        api.get_client(client_id)
        api.get("clients/services", {"clientId": client_id, "statuses[]": 1})
        api.get("clients/services", {"clientId": client_id, "statuses[]": 3})
        api.get("invoices", {"clientId": client_id})
        api.get("payments", {"clientId": client_id})
    return emulator.calls - before, time.perf_counter() - started


def main() -> int:
    args = parse_args()
    url = make_url(os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    from flask_migrate import upgrade

    from app import create_app
    from app.config import Config
    from app.sources.uisp import UispApi, refresh_uisp
    from tests.emulators.uisp import API, create_app as create_emulator

    started = time.perf_counter()
    emulator_app = create_emulator(size=args.clients, latency=args.latency_ms / 1000, estates=("A", "B"))
    emulator = emulator_app.extensions["uisp"]
    data = emulator.data
    print(f"emulator: {len(data.clients):,} clients, {len(data.services):,} services, "
          f"{len(data.invoices):,} invoices, {len(data.payments):,} payments, "
          f"{args.latency_ms} ms per call (generated in {time.perf_counter() - started:.1f}s)")
    server = make_server("127.0.0.1", 0, emulator_app, threaded=True, request_handler=QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}{API}"

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

            logging.disable(logging.WARNING)
            upgrade()
            api = UispApi(base, "dev-uisp-key", page_size=args.page_size)

            calls, seconds = baseline(api, emulator, args.sample)
            per_customer_s = seconds / args.sample
            base_calls, base_seconds = 5 * args.clients, per_customer_s * args.clients
            print(f"baseline (measured on {args.sample} customers, extrapolated to {args.clients:,}): "
                  f"{calls} calls in {seconds:.2f}s -> {base_calls:,} calls, ~{base_seconds:,.0f}s")

            api = UispApi(base, "dev-uisp-key", page_size=args.page_size)
            before = emulator.calls
            report = refresh_uisp(db.session, api)
            first_calls = emulator.calls - before
            print(f"refresh (bulk, paged by {args.page_size}): {report.refreshed:,} clients, "
                  f"{report.failed} failed, {report.written:,} rows written; "
                  f"{first_calls} HTTP calls in {report.seconds:.2f}s")

            api = UispApi(base, "dev-uisp-key", page_size=args.page_size)
            before = emulator.calls
            again = refresh_uisp(db.session, api)
            print(f"second refresh: {again.written} rows written, {again.removed} removed; "
                  f"{emulator.calls - before} calls in {again.seconds:.2f}s")

            ratio = first_calls / base_calls
            print(f"calls: {first_calls} vs {base_calls:,} = {ratio:.4%} of the baseline "
                  f"(goal <= {GOAL_CALL_RATIO:.0%}: {'met' if ratio <= GOAL_CALL_RATIO else 'NOT met'})")
            print(f"time: {report.seconds:.2f}s vs ~{base_seconds:,.0f}s "
                  f"= {base_seconds / report.seconds:,.0f}x faster "
                  f"(goal <= {GOAL_SECONDS:.0f}s: {'met' if report.seconds <= GOAL_SECONDS else 'NOT met'})")
            db.session.remove()
            db.engine.dispose()
            return 0 if again.written == 0 and report.failed == 0 else 1
    finally:
        server.shutdown()
        drop_database(url)


if __name__ == "__main__":
    sys.exit(main())
