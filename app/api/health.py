"""GET /healthz: database, redis, mqtt and worker status as JSON (fixed interface); GET /metrics.

/healthz keeps its keys and their meaning; it adds `queues` (per RQ queue: depth and the oldest
waiting job's age) and, under `ingest`, `backlog` and `lag_seconds`. Neither changes the overall
status: a deep queue is a figure to watch, not an outage. `/metrics` answers only when enabled
(config METRICS_ENABLED or the `metrics_enabled` setting), else 404.
"""
import hmac
import socket
from urllib.parse import urlparse

from flask import Blueprint, Response, abort, current_app, jsonify, request
from sqlalchemy import select, text

from app.extensions import csrf, db

bp = Blueprint("health", __name__)


def check_database() -> dict:
    try:
        db.session.execute(text("SELECT 1"))
        return {"status": "ok", "dialect": db.engine.dialect.name}
    except Exception as error:  # any failure is a health fact, not a crash
        db.session.rollback()
        return {"status": "error", "error": type(error).__name__}


def check_redis_and_workers() -> tuple[dict, dict]:
    url = current_app.config.get("REDIS_URL")
    if not url:
        return {"status": "not_configured"}, {"status": "inline", "detail": "jobs run in the web process"}
    try:
        from redis import Redis
        from rq import Worker

        connection = Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        connection.ping()
        workers = Worker.all(connection=connection)
        worker = {"status": "ok" if workers else "none_running", "count": len(workers)}
        return {"status": "ok"}, worker
    except Exception as error:
        return {"status": "error", "error": type(error).__name__}, {"status": "unknown"}


def check_mqtt() -> dict:
    url = current_app.config.get("MQTT_URL")
    if not url:
        return {"status": "not_configured"}
    parts = urlparse(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 1883), timeout=1):
            return {"status": "ok"}
    except OSError as error:
        return {"status": "error", "error": type(error).__name__}


def check_ingest() -> dict:
    """The MQTT ingest workers' heartbeats; degraded when fewer than INGEST_WORKERS_EXPECTED live."""
    from datetime import timedelta

    from app.metering.ingest import worker_status
    from app.models.ingest import IngestHeartbeat

    try:
        # An empty MQTT_URL still runs workers/mqtt_ingest.py against its default broker,
        # so only a database without a single heartbeat means ingest is not set up.
        if not current_app.config.get("MQTT_URL") and db.session.scalar(
                select(IngestHeartbeat.client_id).limit(1)) is None:
            return {"status": "not_configured"}
        stale_after = timedelta(seconds=3 * current_app.config.get("INGEST_HEARTBEAT_SECONDS", 5))
        return worker_status(db.session, stale_after, current_app.config.get("INGEST_WORKERS_EXPECTED", 0))
    except Exception as error:  # the database check reports the cause
        db.session.rollback()
        return {"status": "unknown", "error": type(error).__name__}


def check_queues() -> dict:
    """Each RQ queue's depth and its oldest waiting job's age (seconds)."""
    url = current_app.config.get("REDIS_URL")
    if not url:
        return {"status": "inline"}
    from app.jobs import QUEUES
    from app.monitoring import queue_stats

    try:
        stats = queue_stats(url, QUEUES)
    except Exception as error:  # the redis check reports the outage
        return {"status": "unknown", "error": type(error).__name__}
    return {"status": "ok", **{s.name: {"depth": s.depth, "oldest_age_seconds": s.oldest_age_seconds}
                               for s in stats}}


def ingest_lag(ingest: dict) -> dict:
    """`backlog` and `lag_seconds` of the live ingest workers (added to the ingest section)."""
    from datetime import timedelta

    from app.monitoring import ingest_lag as measure

    if ingest.get("status") in ("not_configured", "unknown"):
        return {}
    try:
        lag = measure(db.session, timedelta(seconds=3 * current_app.config.get("INGEST_HEARTBEAT_SECONDS", 5)))
    except Exception:
        db.session.rollback()
        return {}
    return {"backlog": lag.backlog, "lag_seconds": lag.lag_seconds}


@bp.get("/healthz")
@csrf.exempt
def healthz():
    database = check_database()
    redis, worker = check_redis_and_workers()
    mqtt = check_mqtt()
    ingest = check_ingest()
    ingest.update(ingest_lag(ingest))
    healthy = (database["status"] == "ok" and "error" not in (redis["status"], mqtt["status"])
               and ingest["status"] != "too_few")
    body = {"status": "ok" if healthy else "degraded", "database": database, "redis": redis,
            "mqtt": mqtt, "worker": worker, "ingest": ingest, "queues": check_queues()}
    return jsonify(body), 200 if healthy else 503


@bp.get("/metrics")
@csrf.exempt
def metrics():
    from prometheus_client import CONTENT_TYPE_LATEST

    from app.monitoring import metrics_enabled, render_metrics

    if not metrics_enabled(db.session, current_app.config):
        abort(404)
    token = current_app.config.get("METRICS_TOKEN")
    if token:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return Response("a bearer token is needed\n", status=401, content_type="text/plain",
                            headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    return Response(render_metrics(db.session, current_app.config), content_type=CONTENT_TYPE_LATEST)
