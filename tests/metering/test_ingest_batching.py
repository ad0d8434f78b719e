"""Ingest throughput plumbing: array literals for batch statements, worker settings and lanes."""
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import text

from app.sql_arrays import pg_array
from workers.mqtt_ingest import IngestWorker, Settings

TRICKY = ["plain", "", "NULL", 'say "hi"', "back\\slash", "a,b", "{braces}", " spaced ", "ümlaut €", "x\\\"y"]


@pytest.mark.parametrize(("values", "kind"), [
    (TRICKY, "varchar"),
    ([1, -2, 0, None, 2**40], "bigint"),
    ([Decimal("-2.500000"), Decimal("0"), Decimal("1E+2"), Decimal("123456789.123456"), None], "numeric"),
    ([datetime(2026, 3, 1, 0, 0, tzinfo=UTC), datetime(2026, 3, 1, 2, 0, 0, 1, tzinfo=timezone(timedelta(hours=2))),
      None], "timestamptz"),
    ([], "integer"),
])
def test_array_literals_reach_postgresql_unchanged(session, values, kind):
    back = session.execute(text(f"SELECT CAST(:values AS {kind}[])"), {"values": pg_array(values)}).scalar()
    assert back == values


def test_worker_settings_come_from_the_app_config(app, monkeypatch):
    for name, value in {"MQTT_URL": "", "MQTT_CLIENT_ID": "ingest-7", "MQTT_SHARED": True,
                        "MQTT_SHARE_GROUP": "g", "MQTT_TOPIC_PREFIX": "p/", "INGEST_BATCH_SIZE": 2000,
                        "INGEST_BATCH_WAIT_MS": 30, "INGEST_HEARTBEAT_SECONDS": 2.5, "INGEST_LANES": 3,
                        "INGEST_SPOOL_PATH": "/tmp/spool.jsonl"}.items():
        monkeypatch.setitem(app.config, name, value)
    settings = Settings.from_config(app.config)
    assert settings == Settings(url="mqtt://127.0.0.1:1883", client_id="ingest-7", shared=True, share_group="g",
                                prefix="p/", batch_size=2000, batch_wait=0.03, heartbeat=2.5, lanes=3,
                                spool_path="/tmp/spool.jsonl")
    assert settings.subscriptions()[0] == "$share/g/p/application/+/device/+/event/up"


def test_lanes_keep_each_meter_on_one_lane_and_spread_meters(app):
    settings = Settings(url="mqtt://127.0.0.1:1", client_id="lanes", shared=False, share_group="g",
                        prefix="p/", batch_size=10, batch_wait=0.01, lanes=4)
    worker = IngestWorker(app, settings)
    assert worker._lane("p/meters/000023022673/readings") == worker._lane("p/meters/23022673/readings") \
        == worker._lane("p/meters/23022673/acks")
    assert worker._lane("p/application/1/device/A1B2/event/up") == worker._lane("p/application/2/device/a1b2/event/up")
    lanes = {worker._lane(f"p/meters/{90_000_000 + n}/readings") for n in range(200)}
    assert lanes == {0, 1, 2, 3}
    single = IngestWorker(app, Settings(**{**settings.__dict__, "lanes": 1}))
    assert single._lane("p/meters/1/readings") == 0
