"""/healthz reports the MQTT ingest workers from their heartbeats (issue 3)."""
from datetime import timedelta

import pytest

from app.metering.ingest import record_heartbeat, worker_status
from app.models import utcnow
from app.models.ingest import IngestHeartbeat


def beat(session, client_id: str, **changes) -> None:
    fields = dict(started_at=utcnow(), connected=True, paused=False, backlog=3, last_batch_at=utcnow(),
                  last_batch_size=500, readings=12_000)
    fields.update(changes)
    record_heartbeat(session, client_id, **fields)


@pytest.fixture
def mqtt_configured(app, monkeypatch):
    monkeypatch.setitem(app.config, "MQTT_URL", "mqtt://127.0.0.1:1883")
    monkeypatch.setitem(app.config, "REDIS_URL", "")


def test_a_fresh_heartbeat_is_a_live_worker_with_its_backlog(session):
    beat(session, "ingest-a")
    status = worker_status(session, timedelta(seconds=15))
    assert (status["status"], status["count"]) == ("ok", 1)
    worker = status["workers"][0]
    assert (worker["client_id"], worker["backlog"], worker["last_batch_size"]) == ("ingest-a", 3, 500)
    assert worker["seconds_since_beat"] < 5


def test_stale_and_stopped_workers_are_not_alive(session):
    beat(session, "ingest-old")
    beat(session, "ingest-stopped", stopped=True)
    session.get(IngestHeartbeat, "ingest-old").beat_at = utcnow() - timedelta(minutes=2)
    session.commit()
    assert worker_status(session, timedelta(seconds=15))["status"] == "none_running"
    assert worker_status(session, timedelta(seconds=15), expected=1)["status"] == "too_few"


def test_a_restarted_worker_reuses_its_row(session):
    beat(session, "ingest-a", readings=5)
    beat(session, "ingest-a", stopped=True)
    beat(session, "ingest-a", readings=0)
    assert session.query(IngestHeartbeat).count() == 1
    assert session.get(IngestHeartbeat, "ingest-a").stopped_at is None


def test_healthz_degrades_when_fewer_workers_live_than_expected(app, session, monkeypatch,
                                                                 mqtt_configured):
    monkeypatch.setitem(app.config, "INGEST_WORKERS_EXPECTED", 2)
    beat(session, "ingest-a")
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    data = response.get_json()
    assert data["status"] == "degraded" and data["ingest"]["status"] == "too_few"
    assert (data["ingest"]["count"], data["ingest"]["expected"]) == (1, 2)
    beat(session, "ingest-b")
    response = app.test_client().get("/healthz")
    assert response.status_code == 200 and response.get_json()["ingest"]["count"] == 2


def test_healthz_without_expected_workers_only_reports_them(app, session, mqtt_configured):
    data = app.test_client().get("/healthz").get_json()
    assert data["status"] == "ok" and data["ingest"]["status"] == "none_running"


def test_healthz_without_mqtt_leaves_ingest_out(app, monkeypatch):
    monkeypatch.setitem(app.config, "MQTT_URL", "")
    assert app.test_client().get("/healthz").get_json()["ingest"] == {"status": "not_configured"}


def test_healthz_without_mqtt_url_still_reports_heartbeats(app, session, monkeypatch):
    # An empty MQTT_URL makes the worker use its default broker, so its beats still count.
    monkeypatch.setitem(app.config, "MQTT_URL", "")
    monkeypatch.setitem(app.config, "REDIS_URL", "")
    beat(session, "ingest-default")
    ingest = app.test_client().get("/healthz").get_json()["ingest"]
    assert (ingest["status"], ingest["count"]) == ("ok", 1)
    assert ingest["workers"][0]["client_id"] == "ingest-default"
    session.get(IngestHeartbeat, "ingest-default").beat_at = utcnow() - timedelta(minutes=2)
    session.commit()
    ingest = app.test_client().get("/healthz").get_json()["ingest"]
    assert (ingest["status"], ingest["count"]) == ("none_running", 0), "a stale beat is reported, not hidden"
    monkeypatch.setitem(app.config, "INGEST_WORKERS_EXPECTED", 1)
    response = app.test_client().get("/healthz")
    assert response.status_code == 503 and response.get_json()["ingest"]["status"] == "too_few"
