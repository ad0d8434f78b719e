"""The ingest worker against real Mosquitto and PostgreSQL (topics and client ids unique per run)."""
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select

from app.metering.ingest import set_maintenance
from app.models import LedgerTransaction, Reading
from app.models.metering import RelayCommand
from tests.factories import make_meter
from tests.metering.conftest import at, balance

ROOT = Path(__file__).resolve().parents[2]
BROKER = ("127.0.0.1", 1883)


class Worker:
    """`workers/mqtt_ingest.py` as a subprocess on the test database, under a unique topic prefix."""

    def __init__(self, prefix: str, client_id: str, share_group: str = "", lanes: int = 1) -> None:
        self.prefix, self.client_id, self.process = prefix, client_id, None
        self.share_group, self.lanes = share_group, lanes

    def start(self) -> None:
        env = dict(os.environ, DATABASE_URL=os.environ["TEST_DATABASE_URL"],
                   MQTT_URL=f"mqtt://{BROKER[0]}:{BROKER[1]}", MQTT_CLIENT_ID=self.client_id,
                   MQTT_TOPIC_PREFIX=self.prefix, INGEST_BATCH_SIZE="50", PYTHONPATH=str(ROOT),
                   MQTT_SHARED="1" if self.share_group else "", MQTT_SHARE_GROUP=self.share_group,
                   INGEST_LANES=str(self.lanes))
        self.log = open(f"/tmp/{self.client_id}.log", "ab")  # noqa: SIM115 - closed in stop()
        start = self.log.tell()
        self.process = subprocess.Popen([sys.executable, "workers/mqtt_ingest.py"], cwd=ROOT, env=env,
                                        stdout=self.log, stderr=self.log)
        wait_for(lambda: b"subscribed" in Path(self.log.name).read_bytes()[start:], timeout=20)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.log.close()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        if not self.log.closed:
            self.log.close()
        if not os.environ.get("KEEP_WORKER_LOGS"):
            Path(self.log.name).unlink(missing_ok=True)


class Publisher:
    """A plain QoS 1 publisher (what a meter or ChirpStack does)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:10]}")
        self.client.connect(*BROKER)
        self.client.loop_start()
        self.received: list[tuple[str, dict]] = []
        self.client.on_message = lambda _c, _u, m: self.received.append(
            (m.topic[len(prefix):], json.loads(m.payload)))

    def reading(self, serial: str, moment, register: str) -> None:
        body = json.dumps({"meter": serial, "time": moment.isoformat(), "energy": f"{register} kWh"})
        self.client.publish(f"{self.prefix}meters/{serial}/readings", body, qos=1).wait_for_publish(5)

    def listen(self, topic: str) -> None:
        self.client.subscribe(self.prefix + topic, qos=1)
        time.sleep(0.3)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}/"


@pytest.fixture
def worker(prefix):
    process = Worker(prefix, f"ingest-test-{uuid.uuid4().hex[:12]}")
    process.start()
    yield process
    process.stop()
    # The persistent session would outlive the test: clear it.
    cleaner = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=process.client_id, clean_session=True)
    cleaner.connect(*BROKER)
    cleaner.disconnect()


@pytest.fixture
def publisher(prefix):
    client = Publisher(prefix)
    yield client
    client.close()


def wait_for(check, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")


def readings_count(session) -> int:
    session.rollback()
    return session.scalar(select(func.count(Reading.id)))


def test_published_readings_move_the_balance(session, metered, worker, publisher):
    publisher.reading("000023022673", at(60), "100")
    publisher.reading("23022673", at(30), "102.5")
    wait_for(lambda: balance(session, metered.pocket) != Decimal("100"))
    assert balance(session, metered.pocket) == Decimal("95.00")


def test_the_same_message_twice_is_billed_once(session, metered, worker, publisher):
    for _ in range(2):
        publisher.reading("23022673", at(60), "100")
        publisher.reading("23022673", at(30), "101")
    wait_for(lambda: readings_count(session) == 2)
    time.sleep(1.0)  # let the second copies arrive and be judged
    assert balance(session, metered.pocket) == Decimal("98.00")
    assert session.scalar(select(func.count(LedgerTransaction.id)).where(
        LedgerTransaction.kind == "consumption")) == 1


def test_killing_the_worker_mid_stream_loses_and_doubles_nothing(session, metered, worker, publisher):
    serials = [str(70_000 + n) for n in range(10)]
    for serial in serials:
        make_meter(session, metered.unit, serial=serial, utility="water")
    session.commit()
    # 40 half-hours per meter, interleaved across meters: 400 readings, 0.5 kL each step.
    messages = [(serial, at(30 * (40 - step)), str(Decimal("0.5") * step))
                for step in range(40) for serial in serials]
    for serial, moment, register in messages[:200]:
        publisher.reading(serial, moment, register)
    wait_for(lambda: readings_count(session) >= 20)
    worker.kill()
    for serial, moment, register in messages[200:]:
        publisher.reading(serial, moment, register)  # queued in the broker for the session
    worker.start()
    wait_for(lambda: readings_count(session) == 400, timeout=90)
    time.sleep(1.0)
    session.rollback()
    keys = session.scalars(select(LedgerTransaction.idempotency_key).where(
        LedgerTransaction.kind == "consumption")).all()
    assert len(keys) == len(set(keys)) == 0  # no water tariff: nothing billed, nothing doubled
    consumption = session.scalar(select(func.sum(Reading.consumption)))
    assert consumption == Decimal("0.5") * 39 * 10


def test_kill_and_restart_bills_every_reading_exactly_once(session, metered, worker, publisher):
    steps = 150
    messages = [("23022673", at(30 * (steps - step)), str(100 + step)) for step in range(steps)]
    for serial, moment, register in messages[:80]:
        publisher.reading(serial, moment, register)
    wait_for(lambda: readings_count(session) >= 10)
    worker.kill()
    for serial, moment, register in messages[80:]:
        publisher.reading(serial, moment, register)
    worker.start()
    wait_for(lambda: readings_count(session) == steps, timeout=60)
    time.sleep(1.0)
    assert balance(session, metered.pocket) == Decimal("100") - Decimal(2) * (steps - 1)
    assert session.scalar(select(func.count(LedgerTransaction.id)).where(
        LedgerTransaction.kind == "consumption")) == steps - 1


def test_maintenance_holds_messages_in_the_broker_and_resuming_bills_them(session, metered, worker, publisher):
    publisher.reading("23022673", at(90), "100")
    wait_for(lambda: readings_count(session) == 1)
    set_maintenance(session, True)
    session.commit()
    time.sleep(2.5)  # the worker notices within a second and disconnects
    publisher.reading("23022673", at(60), "101")
    publisher.reading("23022673", at(30), "103")
    time.sleep(2.0)
    assert readings_count(session) == 1
    set_maintenance(session, False)
    session.commit()
    wait_for(lambda: readings_count(session) == 3)
    wait_for(lambda: balance(session, metered.pocket) == Decimal("94.00"))


def test_credit_control_sends_relay_off_then_on_and_records_the_ack(session, metered, worker, publisher):
    metered.estate.features = {"credit_control": True}
    metered.estate.minimum_activation_amount = Decimal("20")
    session.commit()
    publisher.listen("meters/+/commands")
    publisher.reading("23022673", at(60), "100")
    publisher.reading("23022673", at(30), "160")  # 60 kWh at R2: R-20
    wait_for(lambda: publisher.received)
    topic, body = publisher.received[0]
    assert topic == "meters/23022673/commands"
    assert (body["command"], body["state"]) == ("relay", "off")
    publisher.client.publish(f"{publisher.prefix}meters/23022673/acks",
                             json.dumps({"command_id": body["command_id"], "state": "off"}), qos=1)
    session.rollback()

    def acknowledged():
        session.rollback()
        return session.scalar(select(RelayCommand.status).where(
            RelayCommand.command_id == body["command_id"])) == "acknowledged"
    wait_for(acknowledged)
    publisher.reading("23022673", at(0), "161")  # still negative: no second command
    wait_for(lambda: readings_count(session) == 3)
    time.sleep(1.0)
    assert len(publisher.received) == 1


def test_two_workers_on_a_shared_subscription_bill_the_register_rise_once(session, metered, prefix, publisher):
    group = f"g{uuid.uuid4().hex[:8]}"
    workers = [Worker(prefix, f"ingest-test-{uuid.uuid4().hex[:12]}", group) for _ in range(2)]
    for process in workers:
        process.start()
    try:
        steps = 120
        for step in range(steps):
            publisher.reading("23022673", at(30 * (steps - step)), str(100 + step))
        wait_for(lambda: readings_count(session) == steps, timeout=60)
        time.sleep(1.0)
        # However the two workers interleaved, the money equals the register's rise.
        assert balance(session, metered.pocket) == Decimal("100") - Decimal(2) * (steps - 1)
        total = session.scalar(select(func.sum(Reading.consumption)))
        assert total == Decimal(steps - 1)
    finally:
        for process in workers:
            process.stop()
            cleaner = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=process.client_id, clean_session=True)
            cleaner.connect(*BROKER)
            cleaner.disconnect()


def test_a_reading_the_ledger_refuses_is_dead_lettered_not_retried_forever(session, metered, worker, publisher):
    from app.models.metering import DeadLetter
    from tests.factories import make_period

    make_period(session, metered.estate, at(0).astimezone(metered.estate.tz).strftime("%Y-%m"), "locked")
    session.commit()
    publisher.reading("23022673", at(60), "100")
    publisher.reading("23022673", at(30), "101")

    def refused():
        session.rollback()
        return session.scalar(select(DeadLetter.reason))
    assert "locked" in wait_for(refused)
    assert balance(session, metered.pocket) == Decimal("100")


def test_the_worker_beats_and_healthz_counts_it_alive_until_it_stops(app, session, metered, prefix, publisher,
                                                                     monkeypatch):
    from app.models.ingest import IngestHeartbeat

    monkeypatch.setitem(app.config, "MQTT_URL", f"mqtt://{BROKER[0]}:{BROKER[1]}")
    monkeypatch.setitem(app.config, "INGEST_WORKERS_EXPECTED", 1)
    process = Worker(prefix, f"ingest-test-{uuid.uuid4().hex[:12]}")
    process.start()
    try:
        publisher.reading("23022673", at(60), "100")
        publisher.reading("23022673", at(30), "101")
        wait_for(lambda: readings_count(session) == 2)

        def beat_after_batch():
            session.rollback()
            row = session.get(IngestHeartbeat, process.client_id)
            return row if row is not None and row.readings >= 2 else None
        row = wait_for(beat_after_batch, timeout=15)  # the worker beats every 5 s by default
        assert row.connected and not row.paused and row.stopped_at is None and row.last_batch_at
        response = app.test_client().get("/healthz")
        data = response.get_json()["ingest"]
        assert response.status_code == 200 and data["status"] == "ok"
        assert process.client_id in [worker["client_id"] for worker in data["workers"]]
    finally:
        process.stop()
        cleaner = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=process.client_id, clean_session=True)
        cleaner.connect(*BROKER)
        cleaner.disconnect()
    session.rollback()
    assert session.get(IngestHeartbeat, process.client_id).stopped_at is not None
    response = app.test_client().get("/healthz")
    assert response.status_code == 503 and response.get_json()["ingest"]["status"] == "too_few"


def test_a_worker_with_lanes_bills_every_meter_exactly_once(session, metered, prefix, publisher):
    serials = [str(80_000 + n) for n in range(12)]
    for serial in serials:
        make_meter(session, metered.unit, serial=serial, utility="water")
    session.commit()
    process = Worker(prefix, f"ingest-test-{uuid.uuid4().hex[:12]}", lanes=3)
    process.start()
    try:
        steps = 10
        for step in range(steps):
            for serial in serials:
                publisher.reading(serial, at(30 * (steps - step)), str(Decimal("0.5") * step))
            publisher.reading("23022673", at(30 * (steps - step)), str(100 + step))
        wait_for(lambda: readings_count(session) == steps * (len(serials) + 1), timeout=60)
        time.sleep(1.0)
        assert balance(session, metered.pocket) == Decimal("100") - Decimal(2) * (steps - 1)
        assert session.scalar(select(func.sum(Reading.consumption))) == \
            Decimal("0.5") * (steps - 1) * len(serials) + (steps - 1)
        keys = session.scalars(select(LedgerTransaction.idempotency_key).where(
            LedgerTransaction.kind == "consumption")).all()
        assert len(keys) == len(set(keys)) == steps - 1
    finally:
        process.stop()
        cleaner = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=process.client_id, clean_session=True)
        cleaner.connect(*BROKER)
        cleaner.disconnect()


def test_poison_messages_with_nul_bytes_never_stall_the_stream(session, metered, worker, publisher):
    from app.models.metering import DeadLetter

    # More poison than Mosquitto's stock 20 messages in flight: each must be settled, not left unacknowledged.
    for number in range(20):
        body = b'{"meter": "23022673", "time": "' + at(30).isoformat().encode() + b'", "energy": "1\x00' \
            + str(number).encode() + b' kWh"}'
        publisher.client.publish(f"{publisher.prefix}meters/23022673/readings", body, qos=1).wait_for_publish(5)
    for step in range(50):
        publisher.reading("23022673", at(30 * (50 - step)), str(100 + step))
    wait_for(lambda: readings_count(session) == 50, timeout=30)
    letters = session.scalars(select(DeadLetter)).all()
    assert len(letters) == 20 and all(b"\x00" in bytes(letter.raw_payload) for letter in letters)
    wait_for(lambda: balance(session, metered.pocket) == Decimal("100") - 2 * 49)
