"""A batch with one poison message: the worker's halving retry against the old one-by-one retry.

Run from the repository root:  .venv/bin/python bench/ingest_retry.py [--n 2000] [--meters 200]
Creates its own database (BENCH_DATABASE_URL, default meterwise_bench_ingest_retry), migrates it,
seeds one estate on a flat tariff with `--meters` funded meters (as bench/ingest.py does) and a
second estate whose current month is locked, with one meter: its reading is the poison (the
ledger refuses its bill, so the whole batch fails). Each run hands the real `IngestWorker` a batch
of `--n` messages (n - 1 good readings, the poison in the middle) in process, with acks recorded
instead of sent, so only the retry strategy differs:
(a) baseline: the batch fails, then every message is tried in its own transaction (the worker's
    retry before issue 11);
(b) halving: `IngestWorker._process`, which halves the failing batch until the poison is alone.
Prints readings/s for both and the ratio, the batch attempts each needed, and exits 1 unless both
stored every good reading once and dead-lettered only the poison. Drops the database afterwards.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import paho.mqtt.client as mqtt  # noqa: E402
from sqlalchemy import make_url, text  # noqa: E402


from bench.database import bench_config, drop_database, recreate_database  # noqa: E402
from bench.ingest import Readings, seed  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/meterwise_bench_ingest_retry"
POISON_SERIAL = "66600001"


class Acks:
    """Stands in for the paho client: records acknowledgements."""

    def __init__(self) -> None:
        self.acked: list[int] = []

    def ack(self, mid: int, _qos: int) -> None:
        self.acked.append(mid)

    def publish(self, *_args, **_kwargs):
        raise RuntimeError("the bench publishes nothing")


def seed_poison(session) -> mqtt.MQTTMessage:
    """A second estate, its current local month locked, one meter with a reading: the poison."""
    from app.ledger.accounts import open_wallet
    from app.models import Estate, FinancialPeriod, Meter, Reading, Unit
    from app.models.metering import TariffVersion

    estate = Estate(code="LOCKED", name="Locked", country="ZA", currency="ZAR", timezone="Africa/Johannesburg")
    session.add(estate)
    session.flush()
    session.add(TariffVersion(estate_id=estate.id, utility="electricity", effective_from=date(2020, 1, 1),
                              kind="flat", rates={"rate": "2.50"}))
    unit = Unit(estate_id=estate.id, number="L1")
    session.add(unit)
    session.flush()
    open_wallet(session, unit, ("electricity",))
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    meter = Meter(estate_id=estate.id, unit_id=unit.id, serial=POISON_SERIAL, utility="electricity",
                  last_reading_at=now - timedelta(minutes=2), last_register=Decimal(5))
    session.add(meter)
    session.flush()
    session.add(Reading(meter_id=meter.id, taken_at=now - timedelta(minutes=2), register=Decimal(5)))
    for period in {m.astimezone(estate.tz).strftime("%Y-%m") for m in (now - timedelta(minutes=2), now)}:
        session.add(FinancialPeriod(estate_id=estate.id, period=period, status="locked"))
    session.commit()
    return message(0, f"meters/{POISON_SERIAL}/readings",
                   f'{{"meter": "{POISON_SERIAL}", "time": "{(now - timedelta(minutes=1)).isoformat()}",'
                   f' "energy": "9 kWh"}}')


def message(mid: int, topic: str, payload: str) -> mqtt.MQTTMessage:
    out = mqtt.MQTTMessage(mid=mid, topic=topic.encode())
    out.payload, out.qos = payload.encode(), 1
    return out


def batch_of(readings: Readings, count: int, poison: mqtt.MQTTMessage, first_mid: int) -> list[mqtt.MQTTMessage]:
    """`count - 1` good readings with the poison in the middle."""
    good = [message(first_mid + index, f"meters/{serial}/readings", payload)
            for index, (serial, _, payload) in enumerate(readings.take(count - 1))]
    return good[:len(good) // 2] + [poison] + good[len(good) // 2:]


def one_by_one(worker, batch: list[mqtt.MQTTMessage]) -> None:
    """The worker's retry before issue 11: the batch, then each message in its own transaction."""
    from app.extensions import db
    from app.models.metering import DeadLetter

    try:
        worker._ingest(batch)
        db.session.commit()
    except Exception:
        db.session.rollback()
        for item in batch:
            try:
                worker._ingest([item])
                db.session.commit()
            except Exception as error:
                db.session.rollback()
                db.session.add(DeadLetter(topic=item.topic[:300], reason=f"pipeline error: {error}"[:500],
                                          payload=item.payload.decode("utf-8", "replace")))
                db.session.commit()
            worker.client.ack(item.mid, item.qos)
        return
    for item in batch:
        worker.client.ack(item.mid, item.qos)


def counting(worker) -> list[int]:
    """Count the worker's batch attempts (calls of its `_ingest`)."""
    calls: list[int] = []
    real = worker._ingest

    def wrapped(batch):
        calls.append(len(batch))
        return real(batch)
    worker._ingest = wrapped
    return calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="messages per batch, the poison included")
    parser.add_argument("--meters", type=int, default=200)
    args = parser.parse_args()
    url = make_url(os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    import logging

    from flask_migrate import upgrade

    from app import create_app
    from app.extensions import db
    from workers.mqtt_ingest import IngestWorker, Settings

    print(f"database: {url.render_as_string(hide_password=True)}; one batch of {args.n:,} messages, "
          f"one poison, {args.meters} meters")
    recreate_database(url)
    try:
        app = create_app(bench_config(url))
        with app.app_context():
            logging.disable(logging.INFO)
            upgrade()
            logging.disable(logging.CRITICAL)  # the retries log every failure; the bench prints figures
            serials = seed(db.session, args.meters)
            poison = seed_poison(db.session)
            readings = Readings(serials)
            settings = Settings(url="mqtt://127.0.0.1:1", client_id="bench-retry", shared=False, share_group="b",
                                prefix="", batch_size=args.n, batch_wait=0.01, spool_path="/dev/null")
            worker = IngestWorker(app, settings)
            worker.client = Acks()
            calls = counting(worker)
            # Each meter's first reading has nothing to bill: prime every meter once (not timed).
            worker._process([message(index + 1, f"meters/{serial}/readings", payload)
                             for index, (serial, _, payload) in enumerate(readings.take(len(serials)))])
            results = {}
            for name, run in (("one by one", one_by_one), ("halving", lambda w, b: w._process(b))):
                batch = batch_of(readings, args.n, poison, len(results) * 10**7 + 10**7)
                before = db.session.execute(text("SELECT (SELECT count(*) FROM readings),"
                                                 " (SELECT count(*) FROM dead_letters)")).one()
                db.session.rollback()
                calls.clear()
                worker.client.acked.clear()
                started = time.perf_counter()
                run(worker, batch)
                elapsed = time.perf_counter() - started
                after = db.session.execute(text("SELECT (SELECT count(*) FROM readings),"
                                                " (SELECT count(*) FROM dead_letters)")).one()
                db.session.rollback()
                stored, dead = after[0] - before[0], after[1] - before[1]
                exact = stored == args.n - 1 and dead == 1 and sorted(worker.client.acked) == sorted(
                    m.mid for m in batch)
                results[name] = (args.n / elapsed, elapsed, len(calls), exact)
                print(f"  {name:10}: {elapsed:6.2f} s, {len(calls):5,} batch attempts, {stored:,} stored, "
                      f"{dead} dead-lettered, every message acknowledged once: {'yes' if exact else 'NO'}")
            base, halving = results["one by one"], results["halving"]
            print("\nresults")
            print(f"  one by one {base[0]:8,.0f} readings/s ({base[2]:,} batch attempts)")
            print(f"  halving    {halving[0]:8,.0f} readings/s ({halving[2]:,} batch attempts)")
            print(f"  ratio      {halving[0] / base[0]:8.1f}x")
            db.session.remove()
            db.engine.dispose()
        return 0 if base[3] and halving[3] else 1
    finally:
        drop_database(url)


if __name__ == "__main__":
    sys.exit(main())
