"""/healthz's added figures (queue depths, oldest queued job, ingest lag) keep its fixed shape, and
/metrics speaks Prometheus only when switched on (issue 22 item 5)."""
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from app.metering.ingest import record_heartbeat
from app.models import AuditLog, JobRun, utcnow
from app.models.metering import DeadLetter
from tests.factories import make_user
from tests.helpers import csrf_from, sign_in, redis_test_url

REDIS_URL = redis_test_url(9)


@pytest.fixture
def redis_db(app, monkeypatch):
    from redis import Redis

    connection = Redis.from_url(REDIS_URL)
    connection.flushdb()
    monkeypatch.setitem(app.config, "REDIS_URL", REDIS_URL)
    yield connection
    connection.flushdb()


def beat(session, client_id: str, **changes) -> None:
    fields = dict(started_at=utcnow(), connected=True, paused=False, backlog=0, last_batch_at=utcnow(),
                  last_batch_size=500, readings=12_000, last_batch_seconds=0.25)
    fields.update(changes)
    record_heartbeat(session, client_id, **fields)


def test_healthz_keeps_its_keys_and_adds_queue_depths_and_the_oldest_job(app, session, redis_db, monkeypatch):
    from rq import Queue

    monkeypatch.setitem(app.config, "MQTT_URL", "")
    low = Queue("low", connection=redis_db)
    low.enqueue("app.job_schedule.start_scheduled", "budget_alerts")
    low.enqueue("app.job_schedule.start_scheduled", "meter_watch")
    first = low.jobs[0]
    first.enqueued_at = datetime.now(UTC) - timedelta(minutes=3)
    first.save()
    data = app.test_client().get("/healthz").get_json()
    assert {"status", "database", "redis", "mqtt", "worker", "ingest"} <= set(data)
    assert data["redis"] == {"status": "ok"} and data["database"]["status"] == "ok"
    queues = data["queues"]
    assert queues["low"]["depth"] == 2 and 175 <= queues["low"]["oldest_age_seconds"] <= 240
    assert queues["high"] == {"depth": 0, "oldest_age_seconds": None}
    assert data["status"] == "ok", "a waiting queue is a figure, not an outage"


def test_healthz_reports_ingest_lag_from_the_workers_heartbeats(app, session, monkeypatch):
    monkeypatch.setitem(app.config, "MQTT_URL", "")
    beat(session, "ingest-a", backlog=0)
    ingest = app.test_client().get("/healthz").get_json()["ingest"]
    assert (ingest["status"], ingest["backlog"], ingest["lag_seconds"]) == ("ok", 0, 0.0)
    beat(session, "ingest-b", backlog=40, last_batch_at=utcnow() - timedelta(seconds=30))
    ingest = app.test_client().get("/healthz").get_json()["ingest"]
    assert ingest["backlog"] == 40 and 29 <= ingest["lag_seconds"] <= 60
    assert app.test_client().get("/healthz").get_json()["queues"] == {"status": "inline"}


def test_metrics_is_404_until_enabled_by_the_setting(app, session, monkeypatch):
    monkeypatch.setitem(app.config, "METRICS_ENABLED", False)
    staff = make_user(session, "staff")
    session.commit()
    staff_client = client = app.test_client()  # one client: the pages share the test's app context
    assert sign_in(staff_client, staff.email).status_code == 302
    assert client.get("/metrics").status_code == 404
    page = staff_client.get("/staff/jobs").get_data(as_text=True)
    assert "Turn /metrics on" in page
    assert staff_client.post("/staff/jobs/metrics", data={"on": "1"}).status_code == 400  # no CSRF token
    assert staff_client.post("/staff/jobs/metrics", data={"on": "1", "csrf_token": csrf_from(page)}).status_code == 302
    assert session.scalar(select(AuditLog).where(AuditLog.action == "setting.put")).new == {"metrics_enabled": True}
    response = client.get("/metrics")
    assert response.status_code == 200 and response.content_type.startswith("text/plain")
    page = staff_client.get("/staff/jobs").get_data(as_text=True)
    staff_client.post("/staff/jobs/metrics", data={"on": "0", "csrf_token": csrf_from(page)})
    assert client.get("/metrics").status_code == 404


def test_metrics_expose_ingest_dead_letters_and_jobs(app, session, monkeypatch):
    monkeypatch.setitem(app.config, "METRICS_ENABLED", True)
    beat(session, "ingest-a", readings=12_000, last_batch_seconds=0.25, backlog=7)
    start = utcnow() - timedelta(minutes=10)
    session.add_all([
        JobRun(kind="pocket_flows", status="done", started_at=start, finished_at=start + timedelta(seconds=2)),
        JobRun(kind="pocket_flows", status="done", started_at=start, finished_at=start + timedelta(seconds=4)),
        JobRun(kind="pocket_flows", status="failed", started_at=start, finished_at=start + timedelta(seconds=1)),
        DeadLetter(topic="meters/1/readings", payload="{}", reason="reading has no time"),
        DeadLetter(topic="meters/1/readings", payload="{}", reason="x", replayed_at=utcnow(), replay_outcome="accepted"),
    ])
    session.commit()
    text = app.test_client().get("/metrics").get_data(as_text=True)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("meterwise_ingest_messages_total", (("worker", "ingest-a"),))] == 12_000
    assert samples[("meterwise_ingest_last_batch_seconds", (("worker", "ingest-a"),))] == 0.25
    assert samples[("meterwise_ingest_backlog", (("worker", "ingest-a"),))] == 7
    assert samples[("meterwise_dead_letters_total", ())] == 2
    assert samples[("meterwise_dead_letters_open", ())] == 1
    assert samples[("meterwise_job_runs_total", (("kind", "pocket_flows"), ("status", "done")))] == 2
    assert samples[("meterwise_job_failures_total", (("kind", "pocket_flows"),))] == 1
    assert samples[("meterwise_job_duration_seconds_count", (("kind", "pocket_flows"),))] == 3
    assert samples[("meterwise_job_duration_seconds_sum", (("kind", "pocket_flows"),))] == 7


def test_metrics_need_the_bearer_token_when_one_is_set(app, monkeypatch):
    monkeypatch.setitem(app.config, "METRICS_ENABLED", True)
    monkeypatch.setitem(app.config, "METRICS_TOKEN", "s3cret-scrape")
    client = app.test_client()
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape"}).status_code == 200
