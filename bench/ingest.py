"""Meter-reading ingest: MQTT -> worker -> PostgreSQL, batched against one transaction per message.

Run from the repository root:  .venv/bin/python bench/ingest.py [--n 50000] [--meters 500]
Creates its own database (BENCH_DATABASE_URL, default meterwise_bench_ingest) and starts its
own Mosquitto on --port (its limits raised: the stock 20 in-flight messages per client would
cap a batch at 20, since the worker acknowledges a batch only after its commit), runs the real `workers/mqtt_ingest.py` as subprocesses, and drops and
stops everything afterwards, also on error. Prints figures; never asserts times.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402
from bench.database import drop_database, recreate_database  # noqa: E402
from sqlalchemy import make_url, text  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/meterwise_bench_ingest"
GOAL_RATE, GOAL_RATIO, GOAL_P99 = 5000, 10, 1.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="readings in the batched run")
    parser.add_argument("--baseline", type=int, default=1_000, help="readings in the one-per-transaction run")
    parser.add_argument("--meters", type=int, default=500)
    parser.add_argument("--workers", type=int, default=1, help="ingest workers (shared subscription when > 1)")
    parser.add_argument("--batch", type=int, default=5000, help="INGEST_BATCH_SIZE of the batched run")
    parser.add_argument("--lanes", type=int, default=2, help="INGEST_LANES of the batched and latency runs")
    parser.add_argument("--latency-rate", type=int, default=1000, help="readings/s in the latency run")
    parser.add_argument("--latency-seconds", type=int, default=15)
    parser.add_argument("--port", type=int, default=18830, help="port of the bench's own Mosquitto")
    return parser.parse_args()


def start_broker(port: int, workdir: Path) -> subprocess.Popen:
    config = workdir / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                      "max_inflight_messages 20000\nmax_queued_messages 1000000\n")
    broker = subprocess.Popen(["mosquitto", "-c", str(config)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    if broker.poll() is not None:
        raise SystemExit(f"mosquitto did not start on port {port}")
    return broker


def seed(session, meters: int) -> list[str]:
    """One ZAR estate, a flat tariff, `meters` funded units with an electricity meter each."""
    from app.ledger import Entry, post_many
    from app.ledger.accounts import open_wallet, system_account
    from app.models import Estate, Meter, Unit
    from app.models.metering import TariffVersion

    estate = Estate(code="BENCH", name="Bench", country="ZA", currency="ZAR", timezone="Africa/Johannesburg")
    session.add(estate)
    session.flush()
    session.add(TariffVersion(estate_id=estate.id, utility="electricity", effective_from=date(2020, 1, 1),
                              kind="flat", rates={"rate": "2.50"}))
    clearing = system_account(session, estate, "clearing", "bench")
    entries, serials = [], []
    for number in range(meters):
        unit = Unit(estate_id=estate.id, number=f"B{number:04d}")
        session.add(unit)
        session.flush()
        wallet = open_wallet(session, unit, ("electricity",))
        serial = str(90_000_000 + number)
        session.add(Meter(estate_id=estate.id, unit_id=unit.id, serial=serial, utility="electricity"))
        serials.append(serial)
        entries.append(Entry(estate_id=estate.id, kind="topup", idempotency_key=f"bench:topup:{number}",
                             legs=[(wallet.pockets[0].id, Decimal("100000")), (clearing.id, Decimal("-100000"))]))
    post_many(session, entries)
    session.commit()
    return serials


class Readings:
    """Rising registers per meter, each reading one minute after the meter's previous one."""

    def __init__(self, serials: list[str]) -> None:
        self.serials = serials
        self.start = datetime.now(UTC) - timedelta(days=30)
        self.step = {s: 0 for s in serials}

    def take(self, count: int) -> list[tuple[str, str, str]]:
        """(serial, time, payload) for the next `count` readings, round-robin over meters."""
        out = []
        for index in range(count):
            serial = self.serials[index % len(self.serials)]
            step = self.step[serial] = self.step[serial] + 1
            moment = (self.start + timedelta(minutes=step)).isoformat()
            out.append((serial, moment, json.dumps({"meter": serial, "time": moment,
                                                    "energy": f"{Decimal(step) / 100} kWh"})))
        return out


def publisher(port: int, prefix: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:8]}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def _varint(length: int) -> bytes:
    out = bytearray()
    while True:
        length, digit = divmod(length, 128)
        out.append(digit | (128 if length else 0))
        if not length:
            return bytes(out)


def publish_raw(port: int, messages: list[tuple[str, str]]) -> None:
    """Publish (topic, payload) pairs at QoS 1 as pre-encoded MQTT 3.1.1 packets on one socket.

    A fleet of meters publishes in parallel; one paho client in Python costs more CPU per
    message than the pipeline under test, on the same two cores. Returns once the broker
    has acknowledged every message (PUBACKs are counted, 4 bytes each).
    """
    client_id = f"bench-raw-{uuid.uuid4().hex[:8]}".encode()
    variable = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(client_id).to_bytes(2, "big") + client_id
    packets = [b"\x10" + _varint(len(variable)) + variable]
    for number, (topic, payload) in enumerate(messages):
        name, body = topic.encode(), payload.encode()
        rest = len(name).to_bytes(2, "big") + name + (number % 65535 + 1).to_bytes(2, "big") + body
        packets.append(b"\x32" + _varint(len(rest)) + rest)
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(b"".join(packets))
        expected, received = 4 + 4 * len(messages), 0  # CONNACK, then one PUBACK per message
        while received < expected:
            chunk = connection.recv(65536)
            if not chunk:
                raise SystemExit(f"broker closed the connection after {received} of {expected} bytes")
            received += len(chunk)
        connection.sendall(b"\xe0\x00")  # DISCONNECT


def start_workers(count: int, port: int, prefix: str, batch: int, database: str, tag: str,
                  lanes: int = 1) -> list[subprocess.Popen]:
    processes = []
    for index in range(count):
        env = dict(os.environ, DATABASE_URL=database, MQTT_URL=f"mqtt://127.0.0.1:{port}",
                   MQTT_CLIENT_ID=f"bench-{tag}-{index}", MQTT_TOPIC_PREFIX=prefix,
                   MQTT_SHARED="1" if count > 1 else "", MQTT_SHARE_GROUP=f"bench{tag}",
                   INGEST_BATCH_SIZE=str(batch), INGEST_BATCH_WAIT_MS="20", INGEST_LANES=str(lanes),
                   PYTHONPATH=str(ROOT))
        log = open(Path(tempfile.gettempdir()) / f"bench-ingest-{tag}-{index}.log", "wb")  # noqa: SIM115
        processes.append(subprocess.Popen([sys.executable, "workers/mqtt_ingest.py"], cwd=ROOT, env=env,
                                          stdout=log, stderr=log))
    for index in range(count):
        path = Path(tempfile.gettempdir()) / f"bench-ingest-{tag}-{index}.log"
        deadline = time.monotonic() + 30
        while b"subscribed" not in path.read_bytes():
            if time.monotonic() > deadline:
                raise SystemExit(f"worker {index} did not subscribe; see {path}")
            time.sleep(0.1)
    return processes


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def billed(engine) -> int:
    with engine.connect() as connection:
        return connection.scalar(text("SELECT count(*) FROM ledger_transactions WHERE kind = 'consumption'"))


def stored(engine, after_id: int = 0) -> int:
    """Readings stored with an id above `after_id` (an index range: polling stays cheap)."""
    with engine.connect() as connection:
        return connection.scalar(text("SELECT count(*) FROM readings WHERE id > :after"), {"after": after_id})


def last_reading_id(engine) -> int:
    with engine.connect() as connection:
        return connection.scalar(text("SELECT coalesce(max(id), 0) FROM readings"))


def throughput_run(engine, args, database, readings: Readings, count: int, batch: int, workers: int,
                   tag: str, lanes: int = 1) -> tuple[float, int]:
    """Publish `count` readings as fast as possible; seconds until every one is stored and billed."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}/"
    processes = start_workers(workers, args.port, prefix, batch, database, tag, lanes)
    try:
        before_id, before_bills = last_reading_id(engine), billed(engine)
        messages = [(f"{prefix}meters/{serial}/readings", payload) for serial, _, payload in readings.take(count)]
        started = time.perf_counter()
        publish_raw(args.port, messages)
        published = time.perf_counter() - started
        while stored(engine, before_id) < count:
            time.sleep(0.1)
            if time.perf_counter() - started > 600:
                raise SystemExit(f"{tag}: only {stored(engine, before_id)} of {count} stored after 600 s")
        elapsed = time.perf_counter() - started
        print(f"  {tag}: {count:,} readings published in {published:.1f} s, stored and billed in {elapsed:.1f} s")
        return elapsed, billed(engine) - before_bills
    finally:
        stop(processes)


def latency_run(engine, args, database, readings: Readings) -> list[float]:
    """Publish at a steady rate; per reading, seconds from publish to its bill's commit time."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}/"
    processes = start_workers(args.workers, args.port, prefix, args.batch, database, "latency", args.lanes)
    try:
        count = args.latency_rate * args.latency_seconds
        messages = readings.take(count)
        client = publisher(args.port, prefix)
        sent_at: dict[str, float] = {}
        started = time.time()
        for index, (serial, moment, payload) in enumerate(messages):
            due = started + index / args.latency_rate
            pause = due - time.time()
            if pause > 0:
                time.sleep(pause)
            key = f"reading:{serial}:{datetime.fromisoformat(moment).astimezone(UTC).isoformat()}"
            sent_at[key] = time.time()
            client.publish(f"{prefix}meters/{serial}/readings", payload, qos=1)
        deadline = time.time() + 120
        latencies: list[float] = []
        while time.time() < deadline:
            with engine.connect() as connection:
                rows = connection.execute(text(
                    "SELECT t.idempotency_key, extract(epoch from t.recorded_at) FROM ledger_transactions t "
                    "WHERE t.idempotency_key = ANY(:keys)"), {"keys": list(sent_at)}).all()
            if len(rows) == len(sent_at):
                latencies = [float(recorded) - sent_at[key] for key, recorded in rows]
                break
            time.sleep(0.5)
        client.loop_stop()
        client.disconnect()
        return latencies
    finally:
        stop(processes)


def main() -> int:
    args = parse_args()
    if not shutil.which("mosquitto"):
        print("bench/ingest.py needs the mosquitto binary", file=sys.stderr)
        return 2
    url = make_url(os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    database = url.render_as_string(hide_password=False)
    import logging

    from flask_migrate import upgrade

    from app import create_app
    from app.config import Config

    class BenchConfig(Config):
        SECRET_KEY = "bench"
        SQLALCHEMY_DATABASE_URI = database

    print(f"database: {url.render_as_string(hide_password=True)}; broker: own mosquitto on :{args.port}")
    recreate_database(url)
    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    broker = start_broker(args.port, workdir)
    try:
        app = create_app(BenchConfig)
        with app.app_context():
            from app.extensions import db

            logging.disable(logging.INFO)
            upgrade()
            logging.disable(logging.NOTSET)
            serials = seed(db.session, args.meters)
            engine = db.engine
        readings = Readings(serials)
        # Each meter's first reading has nothing to bill against: prime every meter once.
        throughput_run(engine, args, database, readings, len(serials), args.batch, 1, "prime")

        print(f"baseline: one transaction per message (INGEST_BATCH_SIZE=1), {args.baseline:,} readings")
        base_s, base_bills = throughput_run(engine, args, database, readings, args.baseline, 1, 1, "baseline")
        print(f"batched: INGEST_BATCH_SIZE={args.batch}, INGEST_LANES={args.lanes}, {args.workers} worker(s), "
              f"{args.n:,} readings")
        batch_s, batch_bills = throughput_run(engine, args, database, readings, args.n, args.batch,
                                              args.workers, "batched", args.lanes)
        base_rate, batch_rate = args.baseline / base_s, args.n / batch_s
        print(f"latency: {args.latency_rate:,} readings/s for {args.latency_seconds} s")
        latencies = sorted(latency_run(engine, args, database, readings))

        print("\nresults")
        print(f"  baseline  {base_rate:8,.0f} readings/s billed ({base_bills:,} bills)")
        print(f"  batched   {batch_rate:8,.0f} readings/s billed ({batch_bills:,} bills)")
        print(f"  ratio     {batch_rate / base_rate:8.1f}x")
        if latencies:
            p50 = statistics.median(latencies)
            p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
            print(f"  latency   p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms over {len(latencies):,} readings "
                  "(publish to the bill's ledger timestamp, taken just before commit)")
        else:
            p99 = float("inf")
            print("  latency   not every reading was billed within 120 s")
        print(f"  goal ≥ {GOAL_RATE:,}/s: {'met' if batch_rate >= GOAL_RATE else 'NOT met'}; "
              f"≥ {GOAL_RATIO}x baseline: {'met' if batch_rate >= GOAL_RATIO * base_rate else 'NOT met'}; "
              f"p99 < {GOAL_P99:.0f} s at {args.latency_rate:,}/s: {'met' if p99 < GOAL_P99 else 'NOT met'}")
        exact = batch_bills == args.n and base_bills == args.baseline and billed(engine) == stored(engine) - len(serials)
        print(f"  every reading billed exactly once: {'yes' if exact else 'NO'}")
        with app.app_context():
            db.engine.dispose()
        return 0 if exact else 1
    finally:
        broker.terminate()
        broker.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
        drop_database(url)


if __name__ == "__main__":
    sys.exit(main())
