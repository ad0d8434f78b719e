"""The ingest worker's failure handling, in process on PostgreSQL (no broker: acks are recorded).

Issue 11 item 5: a database blip is retried, never dead-lettered; a poison message is found by
halving the batch, in O(log N) batch attempts. Item 3: what cannot be dead-lettered is spooled.
"""
import base64
import json
import math
from datetime import timedelta
from decimal import Decimal

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import func, select, text

import workers.mqtt_ingest as worker_module
from app.extensions import db
from app.models import Reading
from app.models.metering import DeadLetter
from tests.factories import make_estate_with_wallet, make_meter, make_period
from tests.metering.conftest import at, balance
from workers.mqtt_ingest import IngestWorker, Settings


class Acks:
    """Stands in for the paho client: records acknowledgements, publishes nothing."""

    def __init__(self) -> None:
        self.acked: list[int] = []

    def ack(self, mid: int, _qos: int) -> None:
        self.acked.append(mid)

    def publish(self, *_args, **_kwargs):
        raise AssertionError("nothing to publish in these tests")


@pytest.fixture
def worker(app, tmp_path):
    settings = Settings(url="mqtt://127.0.0.1:1", client_id="retry-test", shared=False, share_group="g",
                        prefix="", batch_size=1000, batch_wait=0.01, spool_path=str(tmp_path / "spool.jsonl"))
    process = IngestWorker(app, settings)
    process.client = Acks()
    return process


def mqtt_message(mid: int, serial: str, moment, register: str) -> mqtt.MQTTMessage:
    message = mqtt.MQTTMessage(mid=mid, topic=f"meters/{serial}/readings".encode())
    message.payload = json.dumps({"meter": serial, "time": moment.isoformat(), "energy": f"{register} kWh"}).encode()
    message.qos = 1
    return message


def half_hours(count: int, serial: str = "23022673") -> list[mqtt.MQTTMessage]:
    """`count` rising readings half an hour apart, the newest half an hour ago."""
    return [mqtt_message(step + 1, serial, at(30 * (count - step)), str(100 + step)) for step in range(count)]


def counting_ingest(monkeypatch, before=None) -> list[int]:
    """Wrap the worker's `ingest`: record each batch's size, call `before(attempt)` first."""
    sizes: list[int] = []
    real = worker_module.ingest

    def wrapped(session, messages, **kwargs):
        sizes.append(len(messages))
        if before:
            before(len(sizes))
        return real(session, messages, **kwargs)
    monkeypatch.setattr(worker_module, "ingest", wrapped)
    return sizes


def test_a_terminated_connection_is_retried_not_dead_lettered(app, session, metered, worker, monkeypatch):
    def terminate_my_backend(attempt):
        # The backend dies under the worker mid-batch, then again on the retry (as an operator's
        # pg_terminate_backend or a failover would): AdminShutdown both times.
        if attempt <= 2:
            pid = db.session.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar()
            with db.engine.connect() as other:
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    sizes = counting_ingest(monkeypatch, terminate_my_backend)
    messages = half_hours(20)
    with app.app_context():
        worker._process(messages)
    session.rollback()
    assert session.scalar(select(func.count(DeadLetter.id))) == 0
    assert session.scalar(select(func.count(Reading.id))) == 20
    assert balance(session, metered.pocket) == Decimal("100") - 2 * 19
    assert sizes == [20, 20, 20]  # the whole batch again each time, never one by one
    assert worker.client.acked == [m.mid for m in messages]  # each once, after the commit


def test_a_database_that_stays_down_leaves_the_batch_unacknowledged(app, session, metered, worker, monkeypatch):
    from sqlalchemy.exc import OperationalError

    def database_down(_attempt):
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))
    counting_ingest(monkeypatch, database_down)
    waits = []

    def wait():
        waits.append(1)
        if len(waits) == 3:
            worker.running = False  # SIGTERM while the database is still down
        return worker.running
    monkeypatch.setattr(worker, "_wait_for_database", wait)
    with app.app_context():
        worker._process(half_hours(5))
    session.rollback()
    assert worker.client.acked == []  # the broker keeps them for the next start
    assert session.scalar(select(func.count(DeadLetter.id))) == 0


@pytest.mark.parametrize("size", [64, 301])
def test_halving_isolates_one_poison_message_in_log_n_attempts(app, session, metered, worker, monkeypatch, size):
    # The poison: a reading billed into another estate's locked month (the ledger refuses it).
    other = make_estate_with_wallet(session)
    poisoned = make_meter(session, other.unit, serial="66600001")
    session.flush()
    session.add(Reading(meter_id=poisoned.id, taken_at=at(120), register=Decimal(5)))
    poisoned.last_reading_at, poisoned.last_register = at(120), Decimal(5)
    from app.models.metering import TariffVersion
    session.add(TariffVersion(estate_id=other.estate.id, utility="electricity", effective_from=at(0).date()
                              - timedelta(days=3650), kind="flat", rates={"rate": "1.00"}))
    make_period(session, other.estate, at(0).astimezone(other.estate.tz).strftime("%Y-%m"), "locked")
    session.commit()
    sizes = counting_ingest(monkeypatch)
    messages = half_hours(size - 1)
    bad = mqtt_message(10_000, "66600001", at(60), "9")
    messages.insert(size // 3, bad)
    with app.app_context():
        worker._process(messages)
    session.rollback()
    assert len(sizes) <= 2 * math.ceil(math.log2(size)) + 1  # one by one would take size + 1
    assert session.scalar(select(func.count(Reading.id)).where(Reading.meter_id == metered.meter.id)) == size - 1
    assert balance(session, metered.pocket) == Decimal("100") - 2 * (size - 2)
    letter = session.scalar(select(DeadLetter))
    assert "locked" in letter.reason and bytes(letter.raw_payload) == bad.payload
    assert sorted(worker.client.acked) == sorted(m.mid for m in messages)  # every one, once
    assert worker.client.acked == [m.mid for m in messages]  # in the order received


def test_a_message_that_cannot_be_dead_lettered_is_spooled_and_acknowledged(app, session, metered, worker,
                                                                           monkeypatch):
    def pipeline_bug(_attempt):
        raise RuntimeError("a bug in the pipeline")
    counting_ingest(monkeypatch, pipeline_bug)

    def unwritable(**_row):
        raise ValueError("the dead-letter table refuses it")
    monkeypatch.setattr(worker_module, "DeadLetter", unwritable)
    message = mqtt_message(7, "23022673", at(30), "100")
    message.payload = b"\x00" + message.payload
    with app.app_context():
        worker._process([message])
    assert worker.client.acked == [7]  # the broker's in-flight window moves on
    spooled = [json.loads(line) for line in open(worker.settings.spool_path, encoding="utf-8")]
    assert len(spooled) == 1 and spooled[0]["topic"] == "meters/23022673/readings"
    assert base64.b64decode(spooled[0]["payload_base64"]) == message.payload
    assert "a bug in the pipeline" in spooled[0]["reason"]
